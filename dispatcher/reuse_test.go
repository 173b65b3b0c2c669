package dispatcher_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// allocateRSS touches n bytes, so that the child's peak RSS passes n, and
// returns its pid.
var allocateRSS = task.Define("dispatcher_test.reuse.allocateRSS", func(ctx context.Context, n int) (int, error) {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return os.Getpid() + int(b[0]) - 1, nil
})

// taskPids runs n getPid tasks one after another and returns their pids.
func taskPids(t *testing.T, d *dispatcher.Dispatcher, n int) []int {
	t.Helper()
	pids := make([]int, n)
	for i := range pids {
		pid, err := getPid.Schedule(d, 0).Value()
		require.NoError(t, err)
		pids[i] = pid
	}
	return pids
}

// runs counts the runs of equal values in pids: the children, in order.
func childRuns(pids []int) []int {
	var out []int
	for i, p := range pids {
		if i == 0 || p != pids[i-1] {
			out = append(out, 0)
		}
		out[len(out)-1]++
	}
	return out
}

func TestReuseServesUpToNTasksPerChild(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    strategy.Strategy
		want []int // tasks per child, in order
	}{
		{"fresh process per task by default", strategy.Throttled(1), []int{1, 1, 1, 1, 1}},
		{"Reuse(1) is the default", strategy.Throttled(1, strategy.Reuse(1)), []int{1, 1, 1, 1, 1}},
		{"Reuse(0) is the zero Policy's one task", strategy.Throttled(1, strategy.Reuse(0)), []int{1, 1, 1, 1, 1}},
		{"Reuse(2)", strategy.Throttled(1, strategy.Reuse(2)), []int{2, 2, 1}},
		{"Reuse(Unlimited) has no limit", strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)), []int{5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			d := start(t, tt.s)
			require.Equal(t, tt.want, childRuns(taskPids(t, d, 5)))
			shutdown(t, d, nil)
		})
	}
}

func TestReusedChildRetiresPastItsAge(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.MaxAge(1500*time.Millisecond)))
	// The age leaves room for a slow start on a loaded machine: a child
	// that took longer than its age to serve two no-ops would retire.
	first := taskPids(t, d, 2)
	require.Equal(t, first[0], first[1], "a young child is reused")
	time.Sleep(1600 * time.Millisecond) // let it pass its age
	later := taskPids(t, d, 1)
	require.NotEqual(t, first[0], later[0], "a child past its age is replaced")
	shutdown(t, d, nil)
}

// MaxRSS is held against the child's own peak, not the parent's. Linux
// carries the peak RSS of the image that exec replaced into the new
// one's getrusage, and a child starts as a copy of its parent, so a
// child measured that way reported its parent's peak: once the parent
// had passed the bound, every child retired after its first task (the
// flake that found this: the parent of a whole test run passes 200 MiB).
func TestMaxRSSIsTheChildsOwnPeak(t *testing.T) {
	checkLeaks(t)
	// 256 MiB, faulted in by the kernel (MAP_POPULATE), not by Go code
	// that the race detector would shadow: the parent's peak passes it.
	const ballast = 256 << 20
	mem, err := unix.Mmap(-1, 0, ballast, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|mapPopulate)
	require.NoError(t, err)
	require.NoError(t, unix.Munmap(mem))
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	parentPeak := ru.Maxrss * 1024
	require.GreaterOrEqual(t, parentPeak, int64(ballast))

	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.MaxRSS(parentPeak/2)))
	pids := taskPids(t, d, 3)
	require.Equal(t, []int{3}, childRuns(pids), "a small child was retired: its peak counted the parent's %d bytes", parentPeak)
	shutdown(t, d, nil)
}

func TestReusedChildRetiresPastItsRSS(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.MaxRSS(200<<20)))
	small, err := allocateRSS.Schedule(d, 1<<20).Value()
	require.NoError(t, err)
	again, err := allocateRSS.Schedule(d, 1<<20).Value()
	require.NoError(t, err)
	require.Equal(t, small, again, "a small child is reused")
	big, err := allocateRSS.Schedule(d, 300<<20).Value()
	require.NoError(t, err, "the task that passed the bound still answers")
	require.Equal(t, small, big, "the same child ran it")
	after, err := allocateRSS.Schedule(d, 1<<20).Value()
	require.NoError(t, err)
	require.NotEqual(t, big, after, "a child past its RSS bound takes no more work")
	shutdown(t, d, nil)
}

func TestSpareTakesTheFirstTask(t *testing.T) {
	checkLeaks(t)
	p := newProbe(strategy.Throttled(2, strategy.Spares(1)))
	d := start(t, p)
	p.waitFor(t, "a spare", func(s poolState) bool { return s.Idle == 1 && s.Children == 1 })
	spare := liveChildrenOf(t, os.Getpid())
	require.Len(t, spare, 1)
	pid, err := getPid.Schedule(d, 0).Value()
	require.NoError(t, err)
	require.Equal(t, spare[0], pid, "the spare ran the task")
	// A new spare takes its place: one child, not the old one, which the
	// last Step saw idle. (Not "a Step after Value returned saw one": the
	// Steps that start the new spare and reap the old child may both come
	// before Value returns, and then nothing steps again.)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		now := liveChildrenOf(t, os.Getpid())
		p.mu.Lock()
		last := p.seen[len(p.seen)-1]
		p.mu.Unlock()
		if len(now) == 1 && now[0] != pid && last.Idle == 1 && last.Children == 1 && last.Queued == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no new spare took the old one's place in 20s: children %v, last Step saw %+v", now, last)
	}
	shutdown(t, d, nil)
}

func TestPipelinedTasksBehindACrashGoToAnotherChild(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(8)))
	g := newGate(t)
	// The first task holds the child while the others queue behind it in
	// its pipe: the crash and four tasks after it.
	held := hold.Schedule(d, g.arg())
	g.waitStarted(t, 1)
	crash := badExit.Schedule(d, exitArg{Code: 3})
	var after []*result.Result[int]
	for range 4 {
		after = append(after, getPid.Schedule(d, 0))
	}
	g.open(t, 1)
	first, err := held.Value()
	require.NoError(t, err)
	_, err = crash.Value()
	var cd *result.ChildDeath
	require.ErrorAs(t, err, &cd, "the crash: %v", err)
	require.Equal(t, 3, cd.ExitCode)
	require.Equal(t, first, cd.Pid, "the crash ran in the first child")
	for i, r := range after {
		pid, err := r.Value()
		require.NoError(t, err, "task %d behind the crash", i)
		require.NotEqual(t, first, pid, "task %d behind the crash ran in a new child", i)
	}
	shutdown(t, d, nil)
}

func TestTimeoutUnderReuseKillsOnlyItsChild(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(8)), dispatcher.WithGracePeriod(200*time.Millisecond))
	before := taskPids(t, d, 1)[0]
	g := newGate(t)
	a := g.arg()
	a.IgnoreTerm = true
	_, err := hold.Schedule(d, a, task.WithTimeout(300*time.Millisecond)).Value()
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce, "%v", err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, ce.Started)
	require.Equal(t, before, ce.Pid, "the timed-out task ran in the reused child")
	after := taskPids(t, d, 2)
	require.NotEqual(t, before, after[0], "the next task went to another child")
	require.Equal(t, after[0], after[1], "which is reused in turn")
	shutdown(t, d, nil)
}

func TestCloseWithPipelinedWork(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(8)), dispatcher.WithGracePeriod(100*time.Millisecond))
	g := newGate(t)
	a := g.arg()
	a.IgnoreTerm = true
	held := hold.Schedule(d, a)
	g.waitStarted(t, 1)
	var behind []*result.Result[int]
	for range 3 {
		behind = append(behind, getPid.Schedule(d, 0))
	}
	require.NoError(t, d.Close())
	_, err := held.Value()
	var cd *result.ChildDeath
	require.ErrorAs(t, err, &cd, "%v", err)
	require.ErrorIs(t, err, dispatcher.ErrKilled)
	for i, r := range behind {
		_, err := r.Value()
		require.ErrorIs(t, err, dispatcher.ErrClosed, "task %d behind the killed one never started", i)
	}
}

func TestBadPolicyIsRefused(t *testing.T) {
	for _, s := range []strategy.Strategy{
		strategy.Throttled(2, strategy.Reuse(-2)),
		strategy.Throttled(2, strategy.MaxAge(-time.Second)),
		strategy.Throttled(2, strategy.MaxRSS(-1)),
		strategy.Throttled(2, strategy.Spread(1)),
		strategy.Throttled(2, strategy.Spares(-1)),
		strategy.Throttled(2, strategy.Pipeline(65)),
		strategy.Simple(strategy.Pipeline(-1)),
	} {
		d, err := dispatcher.Start(s)
		require.Error(t, err, "%v", s)
		require.Nil(t, d)
		require.Contains(t, err.Error(), "strategy: ")
	}
}

// liveChildrenOf returns the pids of the live children of pid.
func liveChildrenOf(t *testing.T, pid int) []int {
	t.Helper()
	children, err := testio.Children(pid)
	require.NoError(t, err)
	var out []int
	for _, c := range children {
		if !c.Exited() {
			out = append(out, c.Pid)
		}
	}
	return out
}

// refillBuf is the buffer refill keeps from call to call in its child.
var refillBuf []byte

// refill fills one 8 MiB buffer, which its child keeps from call to call,
// with a pattern of seed, from the end back to the start, and answers
// with the buffer itself: a task that reuses its memory as soon as it has
// answered.
var refill = task.Define("dispatcher_test.reuse.refill", func(ctx context.Context, seed int) ([]byte, error) {
	if refillBuf == nil {
		refillBuf = make([]byte, 8<<20)
	}
	for i := len(refillBuf) - 1; i >= 0; i-- {
		refillBuf[i] = byte(seed*7 + i)
	}
	return refillBuf, nil
})

// A large answer goes to the parent by vmsplice: the pipe holds the
// answer's own pages until the parent reads them. A child serves its next
// task only once the parent has, so a task that changes the buffer it
// answered with does not change the answer.
func TestReusedBufferAnswersIntact(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(8)))
	var rs []*result.Result[[]byte]
	for seed := range 8 {
		rs = append(rs, refill.Schedule(d, seed))
	}
	for seed, r := range rs {
		v, err := r.Value()
		require.NoError(t, err)
		require.Len(t, v, 8<<20)
		for i, b := range v {
			if b != byte(seed*7+i) {
				t.Fatalf("answer %d: byte %d is %d, want %d: the next task changed it", seed, i, b, byte(seed*7+i))
			}
		}
	}
	shutdown(t, d, nil)
}

// A spare given its last task waits, once it has answered, for the
// parent's goodbye before it exits (wire.Invocation.Linger), so that its
// exit does not compete with the answer's way to the caller. The parent
// says goodbye in the round that brought the answer, once the caller has
// run: the child is gone long before it would give up waiting (10 s).
func TestSpareExitsOnTheGoodbye(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Spares(1)))
	for range 3 {
		pid, err := getPid.Schedule(d, 0).Value()
		require.NoError(t, err)
		exited, err := testio.WaitExited(pid, 0, 5*time.Second)
		require.NoError(t, err)
		require.True(t, exited, "child %d still runs 5s later: it waits for a goodbye that did not come", pid)
	}
	shutdown(t, d, nil)
}
