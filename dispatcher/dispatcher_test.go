package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func TestScheduleNeverWaitsForAChild(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(2))

	const n = 50
	rs := make([]*result.Result[int], n)
	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		for i := range rs {
			rs[i] = hold.Schedule(d, g.arg())
		}
	}()
	select {
	case <-scheduled:
	case <-time.After(20 * time.Second):
		t.Fatal("Schedule waited: 50 calls did not return in 20s while their tasks were held")
	}
	for i, r := range rs {
		require.False(t, r.Ready(), "task %d resolved before any task could end", i)
	}
	g.waitStarted(t, 2) // children run and are held, yet every Schedule returned
	g.open(t, n)
	d.Join()
	for i, r := range rs {
		_, err := r.Value()
		require.NoError(t, err, "task %d", i)
	}
	shutdown(t, d, nil)
}

func TestJoinWaitsForWhatWasScheduledBefore(t *testing.T) {
	checkLeaks(t)
	before, after := newGate(t), newGate(t)
	d := start(t, strategy.Throttled(4))

	var squares []*result.Result[int]
	for i := range 3 {
		squares = append(squares, square.Schedule(d, i))
	}
	held := hold.Schedule(d, before.arg())
	joined := make(chan error, 1)
	go func() { joined <- d.JoinContext(context.Background()) }()
	waitBlockedIn(t, "(*Dispatcher).JoinContext") // Join has counted what it waits for

	late := hold.Schedule(d, after.arg()) // scheduled after Join was called
	before.waitStarted(t, 1)
	after.waitStarted(t, 1)
	select {
	case err := <-joined:
		t.Fatalf("Join returned (%v) while a task scheduled before it was held", err)
	default:
	}
	before.open(t, 1)
	select {
	case err := <-joined:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Join did not return once what was scheduled before it was done; it waits for a task scheduled after it")
	}
	for _, r := range squares {
		require.True(t, r.Ready())
	}
	require.True(t, held.Ready())
	require.False(t, late.Ready(), "the late task is still held")

	// A Join called now waits for the late task, until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, d.JoinContext(ctx), context.DeadlineExceeded)
	require.False(t, late.Ready())

	after.open(t, 1)
	d.Join()
	require.True(t, late.Ready())
	_, err := late.Value()
	require.NoError(t, err)
	shutdown(t, d, nil)
}

func TestShutdownFinishesQueuedAndRunningWork(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1))
	rs := []*result.Result[int]{hold.Schedule(d, g.arg()), hold.Schedule(d, g.arg()), hold.Schedule(d, g.arg())}
	g.waitStarted(t, 1) // one runs, two are queued

	done := make(chan error, 1)
	go func() { done <- d.Shutdown(context.Background()) }()
	waitBlockedIn(t, "(*Dispatcher).Shutdown")

	late := square.Schedule(d, 2)
	require.True(t, late.Ready(), "Schedule after Shutdown must resolve at once")
	require.ErrorIs(t, late.Err(), dispatcher.ErrClosed)
	for i, r := range rs {
		require.False(t, r.Ready(), "task %d resolved while it was held", i)
	}

	g.open(t, 3)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	require.NoError(t, snap.Leaks(0), "after Shutdown returned")
	for i, r := range rs {
		require.True(t, r.Ready())
		_, err := r.Value()
		require.NoError(t, err, "task %d: Shutdown must finish queued and running work", i)
	}
}

func TestShutdownWhoseContextEndsGoesOnAsClose(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(50*time.Millisecond))
	running := hold.Schedule(d, g.arg()) // does not watch its context
	queued := []*result.Result[int]{hold.Schedule(d, g.arg()), square.Schedule(d, 3)}
	g.waitStarted(t, 1)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(ctx) }()
	waitBlockedIn(t, "(*Dispatcher).Shutdown") // draining, held by the running task
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled, "Shutdown returns ctx.Err()")
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return after its context ended")
	}
	require.NoError(t, snap.Leaks(0), "after Shutdown returned")

	_, err := running.Value()
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death)
	require.ErrorIs(t, err, dispatcher.ErrKilled)
	require.Equal(t, syscall.SIGKILL, death.Signal, "it ignored SIGTERM's cancellation, so SIGKILL ended it")
	for i, r := range queued {
		require.True(t, r.Ready())
		require.ErrorIs(t, r.Err(), dispatcher.ErrClosed, "queued task %d", i)
	}
}

func TestCloseKillsRunningChildren(t *testing.T) {
	t.Run("a task that ignores SIGTERM is killed by SIGKILL after the grace period", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		const grace = 200 * time.Millisecond
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(grace))
		arg := g.arg()
		arg.IgnoreTerm = true
		running := hold.Schedule(d, arg)
		queued := square.Schedule(d, 2)
		g.waitStarted(t, 1)

		began := time.Now()
		require.NoError(t, d.Close())
		took := time.Since(began)

		_, err := running.Value()
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		require.ErrorIs(t, err, dispatcher.ErrKilled)
		require.Equal(t, syscall.SIGKILL, death.Signal)
		require.GreaterOrEqual(t, took, grace, "SIGKILL came before the grace period was over")
		require.ErrorIs(t, queued.Err(), dispatcher.ErrClosed)
	})
	t.Run("a task that watches its context returns on SIGTERM", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		// A grace period far longer than the test should take: SIGTERM
		// must end the task, not the SIGKILL after it.
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(20*time.Second))
		arg := g.arg()
		arg.WatchCtx = true
		running := hold.Schedule(d, arg)
		queued := square.Schedule(d, 2)
		g.waitStarted(t, 1)

		require.NoError(t, d.Close())
		// The task answered: its context's error, as a TaskError.
		_, err := running.Value()
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Contains(t, te.Message, context.Canceled.Error())
		require.ErrorIs(t, queued.Err(), dispatcher.ErrClosed)
	})
}

// A strategy that paces its starts with After must not make Close spin
// through its grace period: the After it asked for is in the past by then.
func TestCloseDoesNotSpinThroughTheGracePeriod(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	const grace = 600 * time.Millisecond
	d := start(t, pollingLimit{limit: 1, every: time.Millisecond}, dispatcher.WithGracePeriod(grace))
	arg := g.arg()
	arg.IgnoreTerm = true
	running := hold.Schedule(d, arg)
	queued := square.Schedule(d, 2) // held back: the strategy asks for a Step every millisecond
	g.waitStarted(t, 1)

	before := cpuTime(t)
	require.NoError(t, d.Close())
	used := cpuTime(t) - before
	require.ErrorIs(t, running.Err(), dispatcher.ErrKilled)
	require.ErrorIs(t, queued.Err(), dispatcher.ErrClosed)
	// Waiting costs next to nothing (about 2ms here); a loop that polls
	// takes a core, or as much of one as a busy machine leaves it.
	require.Less(t, used, grace/6, "Close used %v of CPU in a grace period of %v: it polled", used, grace)
}

// pollingLimit starts children up to a limit and, while tasks wait, asks
// for a Step every so often (a strategy that polls a condition of its own,
// as one that watches the load average would).
type pollingLimit struct {
	limit int
	every time.Duration
}

func (s pollingLimit) Policy() strategy.Policy { return strategy.Policy{} }

func (s pollingLimit) Step(p strategy.Pool) {
	for p.Queued() > p.Idle() && p.Children() < s.limit {
		if p.Spawn() != nil {
			break
		}
	}
	if p.Queued() > 0 {
		p.After(s.every)
	}
}

// cpuTime returns the CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pacer starts every queued task, but no more often than once in every
// (a strategy that paces its starts, as one with a rate limit would); it
// asks for a Step with After when it holds tasks back, and keeps count.
type pacer struct {
	every time.Duration

	steps   int       // on the dispatcher's goroutine only
	last    time.Time // the last start
	asked   time.Time // when it last called After
	started chan time.Time
}

func (s *pacer) Policy() strategy.Policy { return strategy.Policy{} }

func (s *pacer) Step(p strategy.Pool) {
	s.steps++
	if p.Queued() <= p.Idle() {
		return
	}
	now := time.Now()
	if wait := s.every - now.Sub(s.last); !s.last.IsZero() && wait > 0 {
		s.asked = now
		p.After(wait)
		return
	}
	if p.Spawn() == nil {
		s.last = now
		if s.started != nil {
			select {
			case s.started <- now:
			default:
			}
		}
	}
	if p.Queued() > p.Idle() {
		s.asked = now
		p.After(s.every)
	}
}

func TestCloseTwiceOrConcurrentlyReturnsNil(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(2))
	_, err := square.Schedule(d, 2).Value()
	require.NoError(t, err)
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "a second Close")

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { require.NoError(t, d.Close()) })
	}
	wg.Wait()
	require.NoError(t, d.Shutdown(context.Background()), "Shutdown after Close")
	d.Join() // returns at once
	select {
	case <-d.Done():
	default:
		t.Fatal("Done() not closed after Close")
	}
}

// Shutdown of a dispatcher that has already ended returns nil, even with a
// context that has ended too: there was nothing left to cut short.
func TestShutdownOfAnEndedDispatcherReturnsNil(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	require.NoError(t, d.Close())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 100 {
		require.NoError(t, d.Shutdown(ctx), "call %d", i)
	}
}

func TestScheduleAfterShutdownFailsAtOnce(t *testing.T) {
	for _, how := range []string{"Shutdown", "Close"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			p := newProbe(strategy.Throttled(2))
			d := start(t, p)
			if how == "Shutdown" {
				require.NoError(t, d.Shutdown(context.Background()))
			} else {
				require.NoError(t, d.Close())
			}
			r := square.Schedule(d, 3)
			require.True(t, r.Ready(), "Schedule after %s must resolve at once", how)
			_, err := r.Value()
			require.ErrorIs(t, err, dispatcher.ErrClosed)
			require.Zero(t, p.spawns.Load())
		})
	}
}

func TestDispatchersSideBySideRunTheirOwnTasks(t *testing.T) {
	checkLeaks(t)
	const n = 3
	var ds [n]*dispatcher.Dispatcher
	for i := range ds {
		ds[i] = start(t, strategy.Throttled(2), dispatcher.WithGracePeriod(50*time.Millisecond))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, d := range ds {
		wg.Go(func() {
			for k := range 6 {
				x := 100*i + k
				v, err := square.Schedule(d, x).Value()
				if err == nil && v != x*x {
					err = errors.New("a wrong square")
				}
				if err != nil {
					errs[i] = err
					return
				}
				pp, err := pidPair.Schedule(d, 0).Value()
				if err == nil && pp[1] != os.Getpid() {
					err = errors.New("a task ran in a process that is not ours")
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "dispatcher %d", i)
	}

	// Closing one does not touch the others' work.
	g := newGate(t)
	killed := hold.Schedule(ds[0], g.arg())
	spared := hold.Schedule(ds[1], g.arg())
	g.waitStarted(t, 2)
	require.NoError(t, ds[0].Close())
	require.ErrorIs(t, killed.Err(), dispatcher.ErrKilled)
	require.False(t, spared.Ready())
	g.open(t, 1)
	_, err := spared.Value()
	require.NoError(t, err)
	v, err := square.Schedule(ds[2], 9).Value()
	require.NoError(t, err)
	require.Equal(t, 81, v)
	for _, d := range ds[1:] {
		shutdown(t, d, nil)
	}
}

func TestStartRefusesBadStrategies(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    strategy.Strategy
		want string
	}{
		{"nil", nil, "nil strategy"},
		{"Throttled(0)", strategy.Throttled(0), "Throttled(0): the limit must be at least 1"},
		{"Throttled(-1)", strategy.Throttled(-1), "Throttled(-1): the limit must be at least 1"},
		{"DefaultWithFactor(0)", strategy.DefaultWithFactor(0), "DefaultWithFactor(0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			d, err := dispatcher.Start(tc.s)
			require.Error(t, err)
			require.Nil(t, d)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "dispatcher:")
		})
	}
}

func TestStartRefusesABadTermSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{0, -1, 65} {
		checkLeaks(t)
		d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithTermSignal(sig))
		require.Error(t, err)
		require.Nil(t, d)
		require.Contains(t, err.Error(), fmt.Sprintf("dispatcher: WithTermSignal(%d): not a signal", int(sig)))
	}
}

// A task whose argument can never be encoded (a chan, a func) is refused
// where it is defined: no Schedule of it can ever reach a dispatcher.
func TestUnencodableArgumentIsRefusedAtDefine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		define func()
		what   string
	}{
		{"chan", func() {
			task.Define("dispatcher_test.chan-arg", func(ctx context.Context, c chan int) (int, error) { return 0, nil })
		}, "chan int"},
		{"func", func() {
			task.Define("dispatcher_test.func-arg", func(ctx context.Context, f func()) (int, error) { return 0, nil })
		}, "func()"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got any
			func() {
				defer func() { got = recover() }()
				tc.define()
			}()
			require.NotNil(t, got, "Define did not panic; want it to refuse an argument of type %s", tc.what)
			msg := fmt.Sprint(got)
			require.Contains(t, msg, "task: Define(")
			require.Contains(t, msg, tc.what)
			require.NotContains(t, task.Names(), "dispatcher_test."+tc.name+"-arg", "a refused definition must not be registered")
		})
	}
}

// An invocation of a task that the child does not know is a TaskError,
// never a hang.
func TestUnknownTaskIsATaskError(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	r, res := result.New(func(b []byte) (int, error) { return 0, errors.New("no answer was expected") })
	d.Submit(&task.Call{Task: "dispatcher_test.no-such-task", Resolver: res})
	_, err := r.Value()
	var te *result.TaskError
	require.ErrorAs(t, err, &te)
	require.Contains(t, te.Message, "dispatcher_test.no-such-task")
	require.False(t, res.Fail(errors.New("late")), "the future was resolved already")
	shutdown(t, d, nil)
}

func TestGarbageFromAChildIsAProtocolError(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(3))
	others := []*result.Result[int]{hold.Schedule(d, g.arg()), hold.Schedule(d, g.arg())}
	g.waitStarted(t, 2)
	bad := garbage.Schedule(d, g.arg()) // waits at the gate, if it lives that long

	_, err := bad.Value()
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death)
	var pe *procman.ProtocolError
	require.ErrorAs(t, err, &pe, "ChildDeath.Err = %v; want a *procman.ProtocolError", death.Err)
	require.ErrorContains(t, err, "not a frame")
	require.Equal(t, death.Pid, pe.Pid)

	for i, r := range others {
		require.False(t, r.Ready(), "task %d was touched by another child's garbage", i)
	}
	g.open(t, 2)
	for i, r := range others {
		_, err := r.Value()
		require.NoError(t, err, "task %d", i)
	}
	shutdown(t, d, nil)
}

// A strategy that never spawns leaves its tasks queued; Shutdown with a
// short context still returns, and the queued tasks fail with ErrClosed.
func TestShutdownFailsTasksThatTheStrategyNeverStarts(t *testing.T) {
	checkLeaks(t)
	p := newProbe(nil)
	d := start(t, p)
	rs := []*result.Result[int]{square.Schedule(d, 1), square.Schedule(d, 2), square.Schedule(d, 3)}
	p.waitFor(t, "three queued tasks", func(s poolState) bool { return s.Queued == 3 })

	// No child, no timer, no After: nothing could ever start them, so
	// Shutdown fails them and returns, without waiting for its ctx.
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown hung with tasks that its strategy never started")
	}
	for i, r := range rs {
		require.True(t, r.Ready())
		require.ErrorIs(t, r.Err(), dispatcher.ErrStalled, "task %d", i)
		require.ErrorIs(t, r.Err(), dispatcher.ErrClosed, "task %d", i)
	}
	require.Zero(t, p.spawns.Load())
}

// A strategy that holds work back and asks for another Step with After
// gets it, and no Step beyond what it asked for and what happened.
func TestStrategyAfterGetsAnotherStep(t *testing.T) {
	checkLeaks(t)
	const every = 100 * time.Millisecond
	s := &pacer{every: every, started: make(chan time.Time, 3)}
	d := start(t, s)
	rs := []*result.Result[int]{square.Schedule(d, 1), square.Schedule(d, 2), square.Schedule(d, 3)}
	var starts []time.Time
	for range rs {
		select {
		case at := <-s.started:
			starts = append(starts, at)
		case <-time.After(20 * time.Second):
			t.Fatal("the strategy held work back with After and got no Step")
		}
	}
	for i, r := range rs {
		v, err := r.Value()
		require.NoError(t, err)
		require.Equal(t, (i+1)*(i+1), v)
	}
	shutdown(t, d, nil)
	for i := 1; i < len(starts); i++ {
		require.GreaterOrEqual(t, starts[i].Sub(starts[i-1]), every)
	}
	// Steps come from the schedules, the children's ends and the Afters:
	// a dozen or so, where polling would give hundreds.
	require.LessOrEqual(t, s.steps, 30, "Steps in about %v", 2*every)
}

// An idle dispatcher sleeps: its strategy's Step is not called while
// nothing happens.
func TestIdleDispatcherDoesNotPoll(t *testing.T) {
	checkLeaks(t)
	p := newProbe(strategy.Throttled(2))
	d := start(t, p)
	time.Sleep(500 * time.Millisecond)
	require.LessOrEqual(t, p.steps.Load(), int64(1), "Steps of a dispatcher that never had work, in 500ms")

	mark := p.mark()
	_, err := square.Schedule(d, 2).Value()
	require.NoError(t, err)
	p.waitForSince(t, mark, "the child gone", func(s poolState) bool { return s.Children == 0 && s.Queued == 0 })
	steps := p.steps.Load()
	time.Sleep(500 * time.Millisecond)
	require.LessOrEqual(t, p.steps.Load()-steps, int64(1), "Steps of an idle dispatcher in 500ms")
	shutdown(t, d, nil)
}

// The dispatcher's log goes to WithLogger's logger; it says nothing at
// Warn for a run without trouble.
func TestQuietLogWithoutTrouble(t *testing.T) {
	checkLeaks(t)
	var log syncBuffer
	d := start(t, strategy.Throttled(2), dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})))
	for i := range 4 {
		v, err := square.Schedule(d, i).Value()
		require.NoError(t, err)
		require.Equal(t, i*i, v)
	}
	shutdown(t, d, nil)
	require.Empty(t, log.String())
}

// The pattern of the docs, a deferred Close beside a Shutdown at the end
// of the work: the Close after the Shutdown does nothing, and says
// nothing.
func TestCloseAfterShutdownDoesNothing(t *testing.T) {
	checkLeaks(t)
	var log syncBuffer
	d := start(t, strategy.Throttled(1), dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})))
	r := square.Schedule(d, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx))
	before := log.String()
	require.NoError(t, d.Close(), "Close after Shutdown")
	require.Equal(t, before, log.String(), "Close after Shutdown logged")
	v, err := r.Value()
	require.NoError(t, err, "the task Shutdown let finish")
	require.Equal(t, 9, v)
}

// spares keeps n idle children (warm spares) besides one for each queued
// task that no spare will take.
type spares struct{ n int }

func (s spares) Policy() strategy.Policy { return strategy.Policy{} }

func (s spares) Step(p strategy.Pool) {
	for p.Queued() > p.Idle() {
		if p.Spawn() != nil {
			return
		}
	}
	for p.Idle() < s.n {
		if p.Spawn() != nil {
			return
		}
	}
}

// Children started before there is work wait idle, take the next tasks
// without a child being started for them, and are retired by Shutdown.
func TestSpareChildrenTakeWorkAndAreRetired(t *testing.T) {
	for _, how := range []string{"Shutdown", "Close"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			p := newProbe(spares{n: 2})
			d := start(t, p)
			p.waitFor(t, "two spares", func(s poolState) bool { return s.Idle == 2 && s.Children == 2 })
			require.EqualValues(t, 2, p.spawns.Load())

			mark := p.mark()
			rs := []*result.Result[int]{square.Schedule(d, 3), square.Schedule(d, 4)}
			for i, r := range rs {
				v, err := r.Value()
				require.NoError(t, err)
				require.Equal(t, (i+3)*(i+3), v)
			}
			// Each Step since saw the tasks handed to the spares already: none
			// was queued when the strategy was asked.
			p.mu.Lock()
			for _, st := range p.before[mark:] {
				require.Zero(t, st.Queued, "a task waited for the strategy although a spare was idle")
			}
			p.mu.Unlock()
			p.waitForSince(t, mark, "two new spares", func(s poolState) bool { return s.Idle == 2 && s.Children == 2 })

			if how == "Shutdown" {
				shutdown(t, d, nil)
			} else {
				require.NoError(t, d.Close())
			}
		})
	}
}

// Arguments far larger than a pipe holds reach the child intact, whether
// the child gets its invocation as it starts or later, as a spare.
func TestLargeArgumentsArriveIntact(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    strategy.Strategy
	}{
		{"fresh child", strategy.Throttled(2)},
		{"spare", spares{n: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			d := start(t, tc.s)
			sizes := []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 4 << 20}
			var rs []*result.Result[[2]uint32]
			for i, n := range sizes {
				rs = append(rs, checksum.Schedule(d, pattern(i, n)))
			}
			for i, r := range rs {
				got, err := r.Value()
				require.NoError(t, err, "size %d", sizes[i])
				b := pattern(i, sizes[i])
				require.Equal(t, [2]uint32{uint32(len(b)), crc32.ChecksumIEEE(b)}, got, "size %d", sizes[i])
			}
			shutdown(t, d, nil)
		})
	}
}

func TestScheduleAndJoinFromManyGoroutinesResolveEveryCall(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(4))
	const goroutines, each = 4, 10
	rs := make([][]*result.Result[int], goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for k := range each {
				rs[g] = append(rs[g], square.Schedule(d, g*each+k))
			}
		})
	}
	// Joins from other goroutines, at the same time.
	for range 3 {
		wg.Go(d.Join)
	}
	wg.Wait()
	d.Join()
	for g := range rs {
		for k, r := range rs[g] {
			require.True(t, r.Ready(), "Join returned before task %d/%d resolved", g, k)
			v, err := r.Value()
			require.NoError(t, err)
			x := g*each + k
			require.Equal(t, x*x, v)
		}
	}
	shutdown(t, d, nil)
}

// Close ends what a task started too: its child leads a process group,
// and the group is killed.
func TestCloseKillsWhatTheTaskStarted(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(50*time.Millisecond))
	r := startSleeper.Schedule(d, g.arg())
	g.waitStarted(t, 1)
	sleeper, err := strconv.Atoi(g.log(t)[0])
	require.NoError(t, err)
	require.True(t, testio.Alive(sleeper), "the sleeper %d is not running", sleeper)

	require.NoError(t, d.Close())
	require.ErrorIs(t, r.Err(), dispatcher.ErrKilled)
	// SIGKILL was sent to its group before Close returned; the kernel
	// ends it as soon as it runs.
	exited, err := testio.WaitExited(sleeper, 0, 5*time.Second)
	require.NoError(t, err)
	require.True(t, exited, "the task's own child %d outlived Close by 5s", sleeper)
}
