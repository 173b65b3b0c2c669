package dispatcher_test

// The acceptance specs of the Ruby gem procrastinate, ported with the same
// meaning: each test is named after the spec and the example it ports.

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// basic_spec: "Worker writing to a temporary file (orderly shutdown)".
func TestBasicSpec_WhatAWorkerWroteIsThereOnceValueOrShutdownReturns(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	d := start(t, strategy.Default())

	// The parent sees what the child wrote once Value returns...
	first := filepath.Join(dir, "first")
	_, err := writeSuccess.Schedule(d, first).Value()
	require.NoError(t, err)
	require.Equal(t, "success", readFile(t, first))

	// ...and once an orderly shutdown returns, without asking for the value.
	second := filepath.Join(dir, "second")
	r := writeSuccess.Schedule(d, second)
	shutdown(t, d, nil)
	require.True(t, r.Ready(), "Ready() after Shutdown")
	require.Equal(t, "success", readFile(t, second))
}

// basic_spec: "Worker that exits its process": everyone who asks for the
// value gets a ChildDeath, and the dispatcher keeps working.
func TestBasicSpec_AWorkerThatExitsIsAChildDeathForEveryReader(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	d := start(t, strategy.Default())

	proof := filepath.Join(dir, "proof")
	r := badExit.Schedule(d, exitArg{File: proof, Code: 0}) // the gem's worker called exit 0

	const readers = 5
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() { _, errs[i] = r.Value() })
	}
	wg.Wait()
	for i, err := range errs {
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death, "reader %d: Value() error = %v; want a *result.ChildDeath", i, err)
		require.Same(t, errs[0], err, "reader %d got another error than reader 0", i)
		require.Equal(t, badExit.Name(), death.Task)
		require.Equal(t, 0, death.ExitCode)
		require.Zero(t, death.Signal)
		require.NotZero(t, death.Pid)
		require.NotEqual(t, os.Getpid(), death.Pid)
	}
	require.Equal(t, "exit", readFile(t, proof), "the child ran before it exited")

	// The dispatcher was not harmed: it runs the next task.
	after := filepath.Join(dir, "after")
	writeSuccess.Schedule(d, after)
	shutdown(t, d, nil)
	require.Equal(t, "success", readFile(t, after))
}

// basic_spec: "Worker doing nothing when started many times" should not
// exhaust OS resources.
func TestBasicSpec_AHundredIdleWorkersLeaveNothingBehind(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	p := newProbe(strategy.Default())
	d := start(t, p)
	var rs []*result.Result[int]
	for range 100 {
		rs = append(rs, nop.Schedule(d, 0))
	}
	shutdown(t, d, snap) // no child, zombie or fd left, at once
	for i, r := range rs {
		require.True(t, r.Ready(), "task %d: Ready() = false after Shutdown", i)
		_, err := r.Value()
		require.NoError(t, err, "task %d", i)
	}
	limit := 3 * runtime.NumCPU() // strategy.Default's
	require.LessOrEqual(t, p.maxChildren(), limit, "children alive at once")
	require.EqualValues(t, 100, p.spawns.Load(), "one fresh child per task")
}

// basic_spec: "Worker#the_answer return value": 42, and ready? after the
// value was read.
func TestBasicSpec_TheAnswerIsTheValueAndTheFutureIsReady(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Default())
	r := theAnswer.Schedule(d, 0)
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 42, v)
	require.True(t, r.Ready(), "Ready() after Value()")
	select {
	case <-r.Done():
	default:
		t.Fatal("Done() not closed after Value()")
	}
	shutdown(t, d, nil)
}

// basic_spec, grown for this port: ten answers of 64 KiB arrive intact.
func TestBasicSpec_TenLargeAnswersArriveIntact(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Default())
	var rs []*result.Result[[]byte]
	for seed := range 10 {
		rs = append(rs, bigAnswer.Schedule(d, seed))
	}
	for seed, r := range rs {
		v, err := r.Value()
		require.NoError(t, err, "answer %d", seed)
		require.Len(t, v, bigSize, "answer %d", seed)
		require.True(t, string(pattern(seed, bigSize)) == string(v), "answer %d is damaged or mixed up with another", seed)
	}
	shutdown(t, d, nil)
}

// block_spec: "runs blocks in another process".
func TestBlockSpec_RunsInAnotherProcess(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Default())
	pid, err := getPid.Schedule(d, 0).Value()
	require.NoError(t, err)
	require.NotZero(t, pid)
	require.NotEqual(t, os.Getpid(), pid, "the task ran in the test's own process")
	shutdown(t, d, nil)
}

// throttled_spec: "Throttled strategy (:limit => 4) when given 8 tasks
// should never have had more than 4 simultaneous tasks", counted from the
// children's own log.
func TestThrottledSpec_NeverMoreThanFourSimultaneousTasks(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	p := newProbe(strategy.Throttled(4))
	d := start(t, p)

	arg := g.arg()
	arg.Log = true
	var rs []*result.Result[int]
	for range 8 {
		rs = append(rs, hold.Schedule(d, arg))
	}
	// No task can end before the gate opens. Once the dispatcher has taken
	// in all eight, the children alive are all its strategy starts; wait
	// until each has logged its start, then let them all go.
	st := p.waitFor(t, "all 8 tasks queued or running", func(s poolState) bool { return s.Queued+s.Children == 8 })
	g.waitStarted(t, st.Children)
	g.open(t, 8)
	shutdown(t, d, nil)

	pids := map[int]bool{}
	for i, r := range rs {
		pid, err := r.Value()
		require.NoError(t, err, "task %d", i)
		pids[pid] = true
	}
	require.Len(t, pids, 8, "each task in a fresh child")

	// Count from the log what ran at the same time.
	running, most := map[string]bool{}, 0
	lines := g.log(t)
	require.Len(t, lines, 16, "log:\n%s", strings.Join(lines, "\n"))
	for _, line := range lines {
		what, pid, ok := strings.Cut(line, " ")
		require.True(t, ok, "log line %q", line)
		switch what {
		case "start":
			require.False(t, running[pid], "pid %s started twice", pid)
			running[pid] = true
		case "end":
			require.True(t, running[pid], "pid %s ended before it started", pid)
			delete(running, pid)
		default:
			t.Fatalf("log line %q", line)
		}
		most = max(most, len(running))
	}
	require.Empty(t, running)
	require.Equal(t, 4, most, "most tasks running at once, by the children's log; want the limit, 4")
}

// result_spec: "once it has received an answer": the answer is the value,
// the result is ready, and every read gives the same.
func TestResultSpec_AnAnswerIsTheValueOfEveryRead(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Default())
	r := square.Schedule(d, 7)
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 49, v, "Value() = %v, %v; want 49, nil", v, err)
	require.True(t, r.Ready())
	v, err = r.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, 49, v, "a second read")
	require.NoError(t, r.Err())
	shutdown(t, d, nil)
}

// result_spec, for the error a task returns or panics with: a TaskError.
func TestResultSpec_AReturnedOrPanickedErrorIsATaskError(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Default())

	t.Run("returned", func(t *testing.T) {
		_, err := fails.Schedule(d, "no luck").Value()
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Equal(t, fails.Name(), te.Task)
		require.Equal(t, "no luck", te.Message)
		require.False(t, te.Panicked)
		require.Empty(t, te.Stack)
		require.NotZero(t, te.Pid)
		require.NotEqual(t, os.Getpid(), te.Pid)
	})
	t.Run("panicked", func(t *testing.T) {
		_, err := panics.Schedule(d, "kaboom").Value()
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Equal(t, panics.Name(), te.Task)
		require.Equal(t, "kaboom", te.Message)
		require.True(t, te.Panicked)
		require.Contains(t, te.Stack, "panicDeep", "the stack must show the function that panicked")
		require.Contains(t, err.Error(), "panicked")
	})
	// Neither harmed the dispatcher.
	v, err := square.Schedule(d, 3).Value()
	require.NoError(t, err)
	require.Equal(t, 9, v)
	shutdown(t, d, nil)
}

// result_spec: "when marked as failure" (its child died): it is ready?,
// and #value raises ChildDeath, every time.
func TestResultSpec_ADeadChildIsAChildDeathOnEveryRead(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Default())
	for _, code := range []int{0, 1, 3} {
		r := badExit.Schedule(d, exitArg{Code: code})
		<-r.Done()
		require.True(t, r.Ready())
		_, err := r.Value()
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		require.Equal(t, code, death.ExitCode)
		require.Nil(t, death.Err, "an exit is not a protocol error")
		_, again := r.Value()
		require.Same(t, err, again, "a second Value() gives the same error")
		require.Same(t, err, r.Err())
	}
	shutdown(t, d, nil)
}

// result_spec: "fails when there is a second answer". A second answer from
// a child is a protocol error that is logged and dropped; it changes
// nothing and crashes nothing.
func TestResultSpec_SecondAnswerIsAProtocolError(t *testing.T) {
	checkLeaks(t)
	var log syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})
	d := start(t, strategy.Default(), dispatcher.WithLogger(logger))

	r := twoAnswers.Schedule(d, 0)
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 7, v, "the first answer is the value")

	// The dispatcher goes on working; once the child is gone its second
	// answer was read and logged.
	sq, err := square.Schedule(d, 5).Value()
	require.NoError(t, err)
	require.Equal(t, 25, sq)
	shutdown(t, d, nil)
	v, err = r.Value()
	require.NoError(t, err)
	require.Equal(t, 7, v, "the second answer changed the value")
	require.Contains(t, log.String(), "protocol error")
	require.Contains(t, log.String(), "a frame for an invocation it had answered; dropped")
}

// result_spec, for the rule under all of it: every future resolves
// exactly once, whatever happens to its task.
func TestResultSpec_EveryFutureResolvesExactlyOnce(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(2), dispatcher.WithGracePeriod(0))

	type future interface {
		Ready() bool
		Err() error
	}
	var all []future
	var values []*result.Result[int]
	for i := range 3 {
		values = append(values, square.Schedule(d, i))
	}
	all = append(all, values[0], values[1], values[2],
		fails.Schedule(d, "no"), panics.Schedule(d, "no"), badExit.Schedule(d, exitArg{Code: 2}))
	require.NoError(t, d.Join(context.Background()))
	held := []*result.Result[int]{hold.Schedule(d, g.arg()), hold.Schedule(d, g.arg())}
	g.waitStarted(t, 2)
	queued := []*result.Result[int]{square.Schedule(d, 10), square.Schedule(d, 11)} // behind the two held ones
	all = append(all, held[0], held[1], queued[0], queued[1])
	require.NoError(t, d.Close())

	errs := make([]error, len(all))
	for i, f := range all {
		require.True(t, f.Ready(), "future %d not resolved after Close", i)
		errs[i] = f.Err()
		require.Equal(t, errs[i], f.Err(), "future %d: a second read differs", i)
	}
	for i, r := range values {
		v, err := r.Value()
		require.NoError(t, err)
		require.Equal(t, i*i, v)
	}
	var te *result.TaskError
	var death *result.ChildDeath
	require.ErrorAs(t, errs[3], &te)
	require.ErrorAs(t, errs[4], &te)
	require.ErrorAs(t, errs[5], &death)
	for i := 6; i < 8; i++ {
		require.ErrorAs(t, errs[i], &death)
		require.ErrorIs(t, errs[i], dispatcher.ErrKilled)
	}
	for i := 8; i < 10; i++ {
		require.ErrorIs(t, errs[i], dispatcher.ErrClosed)
	}
}

// process_manager_spec: a manager starts with no process, and a child that
// started and exited is cleaned up (the gem's regression: its exit is seen,
// and it is reaped and forgotten). In dispatcher terms: the strategy sees
// no child at first, and none again once the dead child's future resolved,
// with no zombie left while the dispatcher runs on.
func TestProcessManagerSpec_NoProcessesAtStart(t *testing.T) {
	checkLeaks(t)
	p := newProbe(nil)
	d := start(t, p)
	p.waitFor(t, "a first Step", func(poolState) bool { return true })
	p.mu.Lock()
	first := p.seen[0]
	p.mu.Unlock()
	require.Equal(t, poolState{}, first, "the pool at the first Step")
	require.NoError(t, d.Close(), "a Close with nothing to do")
}

func TestProcessManagerSpec_ExitedChildIsCleanedUp(t *testing.T) {
	checkLeaks(t)
	p := newProbe(strategy.Throttled(1))
	d := start(t, p)
	snap := leakcheck.Take() // with the dispatcher's own fds
	mark := p.mark()
	_, err := badExit.Schedule(d, exitArg{Code: 5}).Value()
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death)

	// Reaped before its death was told: no zombie, no fd, and the
	// dispatcher still running.
	require.NoError(t, snap.Leaks(0), "after the child's death was told")
	_, err = os.Stat("/proc/" + strconv.Itoa(death.Pid))
	require.ErrorIs(t, err, os.ErrNotExist, "the dead child %d is still in /proc: %v", death.Pid, err)
	p.waitForSince(t, mark, "no child once the dead one was told", func(s poolState) bool { return s.Children == 0 && s.Queued == 0 })
	select {
	case <-d.Done():
		t.Fatal("the dispatcher ended")
	default:
	}
	v, err := square.Schedule(d, 4).Value()
	require.NoError(t, err)
	require.Equal(t, 16, v)
	shutdown(t, d, nil)
	require.NoError(t, snap.Leaks(0), "after Shutdown returned") // its own fds, closed
}

// A task may start a dispatcher of its own in its child and schedule
// work there.
func TestATaskMayStartADispatcherOfItsOwn(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	r, err := nested.Schedule(d, 7).Value()
	require.NoError(t, err)
	require.Equal(t, 49, r.Square)
	require.NotEqual(t, os.Getpid(), r.Child)
	require.NotEqual(t, os.Getpid(), r.Grandchild)
	require.NotEqual(t, r.Child, r.Grandchild)
	require.Equal(t, r.Child, r.GrandchildParent, "the grandchild's parent is the task's child")
	shutdown(t, d, nil)
	// The grandchild is gone too (it was the child's, reaped by the child's
	// dispatcher before the child answered).
	err = syscall.Kill(r.Grandchild, 0)
	require.ErrorIs(t, err, syscall.ESRCH, "kill(%d, 0) = %v; want ESRCH", r.Grandchild, err)
}
