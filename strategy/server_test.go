package strategy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// The worker of these tests. No child ever runs it: the pool is a fake.
var testWorker = task.DefineWorker("strategy_test.worker", func(ctx context.Context, n int) error {
	return nil
})

// anyHolder holds what its codec learns of only at run time: a chan in
// it fails to encode when SpawnN encodes the argument.
type anyHolder struct{ V any }

var holderWorker = task.DefineWorker("strategy_test.holder-worker", func(ctx context.Context, h anyHolder) error {
	return nil
})

// fakeServerPool is a serverPool whose workers end when the test says.
type fakeServerPool struct {
	fakePool
	calls   []*task.Call // every worker started, in order
	running []*task.Call // those not yet ended
	failErr error        // SpawnCall fails with it, when set
	failed  []error      // what Fail was called with
}

func (p *fakeServerPool) SpawnCall(c *task.Call) error {
	if p.failErr != nil {
		return p.failErr
	}
	p.calls = append(p.calls, c)
	p.running = append(p.running, c)
	return nil
}

func (p *fakeServerPool) Fail(err error) { p.failed = append(p.failed, err) }

// end ends the oldest running worker with err (nil: it returned).
func (p *fakeServerPool) end(t *testing.T, err error) {
	t.Helper()
	require.NotEmpty(t, p.running, "no worker runs")
	c := p.running[0]
	p.running = p.running[1:]
	if err != nil {
		require.True(t, c.Fail(err))
	} else {
		require.True(t, c.Resolve(nil))
	}
}

// step runs a Step with the After request cleared, and returns the pause
// the server asked for (0 if none).
func (p *fakeServerPool) step(s *server) time.Duration {
	p.after, p.afterUsed = 0, false
	s.Step(p)
	return p.after
}

// clock is a fake clock that the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC)} }
func serverOf(s Strategy) *server    { return s.(*server) }
func death(pid int) *result.ChildDeath {
	return &result.ChildDeath{Task: testWorker.Name(), Pid: pid, ExitCode: 1}
}
func withClock(s Strategy, c *clock) *server {
	srv := serverOf(s)
	srv.now = c.now
	return srv
}

func TestServerStartsNWorkers(t *testing.T) {
	c := newClock()
	s := withClock(SpawnN(3, testWorker, 7, CallOptions(task.WithActivityTimeout(time.Second), task.WithProcess(task.Process{Nice: 5}))), c)
	require.NoError(t, s.Validate())
	p := &fakeServerPool{}
	p.step(s)
	require.Len(t, p.calls, 3)
	for _, call := range p.calls {
		require.Equal(t, testWorker.Name(), call.Task)
		var arg int
		require.NoError(t, task.JSON.Unmarshal(call.Arg, &arg))
		require.Equal(t, 7, arg)
		require.Equal(t, time.Second, call.ActivityTimeout, "the activity timeout is the call's")
		require.Equal(t, &task.Process{Nice: 5}, call.Process, "the process settings are the call's")
	}

	// Nothing more while they run.
	p.step(s)
	require.Len(t, p.calls, 3)
	require.Equal(t, 0, p.spawns, "a server never calls Spawn")

	// Each worker has a future of its own.
	p.end(t, nil)
	require.True(t, p.calls[1].Resolve(nil), "ending one worker resolved another's future")
	require.False(t, s.RunsTasks(), "a server runs no scheduled tasks")
	require.Equal(t, `SpawnN(3, "strategy_test.worker")`, s.String())
}

func TestServerNeedsAServerPool(t *testing.T) {
	s := SpawnN(2, testWorker, 0)
	p := &fakePool{}
	s.Step(p)
	require.Zero(t, p.calls, "a server started children through a plain Pool")
}

// The pause before a restart starts at base and doubles with each quick
// death in a row, up to max; the server asks for a Step when it is over,
// and does not restart before.
func TestServerBackoffGrows(t *testing.T) {
	const base, most = 20 * time.Millisecond, 400 * time.Millisecond
	c := newClock()
	s := withClock(SpawnN(1, testWorker, 0, Backoff(base, most), MaxRestarts(100, time.Hour)), c)
	p := &fakeServerPool{}
	p.step(s)
	require.Len(t, p.calls, 1)

	want := []time.Duration{20, 40, 80, 160, 320, 400, 400}
	for i, w := range want {
		w *= time.Millisecond
		c.add(time.Millisecond) // it dies soon after its start
		p.end(t, death(i))
		pause := p.step(s)
		require.Equal(t, w, pause, "the pause after quick death %d", i+1)
		require.Len(t, p.calls, i+1, "restarted before the pause was over")

		c.add(w - time.Nanosecond)
		require.Equal(t, time.Nanosecond, p.step(s), "asks again for the rest of the pause")
		require.Len(t, p.calls, i+1, "restarted before the pause was over")
		c.add(time.Nanosecond)
		p.step(s)
		require.Len(t, p.calls, i+2, "not restarted when the pause was over")
	}
	require.Empty(t, p.failed)
}

// A worker that ran for at least the backoff's max before it ended is not
// a quick death: it is restarted at once, and its slot's pause starts
// again from base.
func TestServerBackoffResetsAfterALongRun(t *testing.T) {
	const base, most = 20 * time.Millisecond, 400 * time.Millisecond
	c := newClock()
	s := withClock(SpawnN(1, testWorker, 0, Backoff(base, most), MaxRestarts(100, time.Hour)), c)
	p := &fakeServerPool{}
	p.step(s)

	// Three quick deaths: the pause has grown to 80ms.
	for range 3 {
		p.end(t, death(1))
		pause := p.step(s)
		c.add(pause)
		p.step(s)
	}
	require.Len(t, p.calls, 4)
	require.Equal(t, 3, s.slots[0].quick)

	// A long run, then a death: restarted at once.
	c.add(most)
	p.end(t, death(2))
	require.Zero(t, p.step(s), "no pause after a long run")
	require.Len(t, p.calls, 5, "restarted at once after a long run")

	// The next quick death pauses for base again.
	c.add(time.Millisecond)
	p.end(t, death(3))
	require.Equal(t, base, p.step(s))

	// A run just short of max is still quick.
	c.add(base)
	p.step(s)
	require.Len(t, p.calls, 6)
	c.add(most - time.Nanosecond)
	p.end(t, nil)
	require.Equal(t, 2*base, p.step(s), "a worker that returned early counts as a quick death")
}

// Past MaxRestarts within the period the server gives up: it reports a
// *RestartLimitError through Fail, once, and restarts nothing more.
func TestServerGivesUpPastTheRestartLimit(t *testing.T) {
	c := newClock()
	s := withClock(SpawnN(1, testWorker, 0, MaxRestarts(3, time.Minute), Backoff(0, 0)), c)
	p := &fakeServerPool{}
	p.step(s)
	for i := range 3 {
		c.add(time.Second)
		p.end(t, death(i))
		p.step(s)
	}
	require.Len(t, p.calls, 4, "started once and restarted 3 times")
	require.Empty(t, p.failed)

	c.add(time.Second)
	last := death(99)
	p.end(t, last)
	p.step(s)
	require.Len(t, p.calls, 4, "restarted past the limit")
	require.Len(t, p.failed, 1)
	var rl *RestartLimitError
	require.ErrorAs(t, p.failed[0], &rl)
	require.Equal(t, &RestartLimitError{Worker: testWorker.Name(), Restarts: 3, Period: time.Minute, Last: last}, rl)
	require.ErrorIs(t, p.failed[0], last)
	require.Equal(t, `strategy: server "strategy_test.worker": workers ended more than 3 times in 1m0s; not restarting them: the last: `+last.Error(), rl.Error())

	for range 3 {
		c.add(time.Hour)
		p.step(s)
	}
	require.Len(t, p.calls, 4, "restarted after giving up")
	require.Len(t, p.failed, 1, "Fail called again")
}

// Restarts older than the period do not count.
func TestServerRestartLimitIsASlidingWindow(t *testing.T) {
	c := newClock()
	s := withClock(SpawnN(1, testWorker, 0, MaxRestarts(2, time.Second), Backoff(0, 0)), c)
	p := &fakeServerPool{}
	p.step(s)
	// A death every 600ms: never more than 2 restarts within a second.
	for i := range 10 {
		c.add(600 * time.Millisecond)
		p.end(t, death(i))
		p.step(s)
	}
	require.Len(t, p.calls, 11)
	require.Empty(t, p.failed)
	// Then two deaths within 100ms: the third restart in a second.
	c.add(100 * time.Millisecond)
	p.end(t, death(10))
	p.step(s)
	require.Len(t, p.calls, 11)
	require.Len(t, p.failed, 1)
}

// MaxRestarts(0, p): a worker that ends is never restarted.
func TestServerWithNoRestarts(t *testing.T) {
	c := newClock()
	s := withClock(SpawnN(2, testWorker, 0, MaxRestarts(0, time.Minute)), c)
	p := &fakeServerPool{}
	p.step(s)
	p.end(t, nil)
	p.step(s)
	require.Len(t, p.calls, 2)
	require.Len(t, p.failed, 1, "the server gives up at the death that breaks the limit, not after the pause")
	c.add(time.Second)
	p.step(s)
	require.Len(t, p.calls, 2, "nothing restarts after giving up")
	require.Len(t, p.failed, 1, "it gives up once")
	var rl *RestartLimitError
	require.ErrorAs(t, p.failed[0], &rl)
	require.Nil(t, rl.Last, "the worker returned nil")
	require.Nil(t, errors.Unwrap(rl))
	require.NotContains(t, rl.Error(), "the last")
}

// A worker that cannot be started counts as one that died at once: its
// slot pauses, and tries again.
func TestServerSpawnCallErrorPauses(t *testing.T) {
	c := newClock()
	s := withClock(SpawnN(1, testWorker, 0, Backoff(50*time.Millisecond, time.Second)), c)
	p := &fakeServerPool{failErr: errors.New("fake: cannot start")}
	require.Equal(t, 50*time.Millisecond, p.step(s))
	p.failErr = nil
	c.add(10 * time.Millisecond)
	require.Equal(t, 40*time.Millisecond, p.step(s))
	require.Empty(t, p.calls)
	c.add(40 * time.Millisecond)
	p.step(s)
	require.Len(t, p.calls, 1)
}

func TestServerValidateRefusesBadOptionsAndSpawnsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Strategy
		want string // "" when valid
	}{
		{"defaults", SpawnN(1, testWorker, 0), ""},
		{"all options", SpawnN(4, testWorker, 0, MaxRestarts(0, time.Second), Backoff(0, 0), CallOptions(task.WithActivityTimeout(0), task.WithProcess(task.Process{}))), ""},
		{"no workers", SpawnN(0, testWorker, 0), "strategy: SpawnN(0): the number of workers must be at least 1"},
		{"negative workers", SpawnN(-2, testWorker, 0), "strategy: SpawnN(-2): the number of workers must be at least 1"},
		{"nil worker", SpawnN[int](1, nil, 0), "strategy: SpawnN with a nil worker"},
		{"argument that cannot be encoded", SpawnN(1, holderWorker, anyHolder{V: make(chan int)}), `strategy: SpawnN("strategy_test.holder-worker"): task "strategy_test.holder-worker": encoding the argument`},
		{"negative restarts", SpawnN(1, testWorker, 0, MaxRestarts(-1, time.Minute)), "strategy: MaxRestarts(-1, 1m0s): the count must not be negative and the period must be positive"},
		{"no period", SpawnN(1, testWorker, 0, MaxRestarts(3, 0)), "strategy: MaxRestarts(3, 0s): "},
		{"base above max", SpawnN(1, testWorker, 0, Backoff(2*time.Second, time.Second)), "strategy: Backoff(2s, 1s): the base must not be negative, nor above the maximum"},
		{"negative base", SpawnN(1, testWorker, 0, Backoff(-time.Second, time.Second)), "strategy: Backoff(-1s, 1s): "},
		{"retries", SpawnN(1, testWorker, 0, CallOptions(task.WithRetries(2, time.Second))), `strategy: SpawnN("strategy_test.worker"): task.WithRetries does not apply to workers`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := tc.s.(interface{ Validate() error })
			require.True(t, ok, "a server has a Validate method")
			err := v.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			// A misconfigured server starts nothing, and does not crash.
			p := &fakeServerPool{}
			tc.s.Step(p)
			require.Empty(t, p.calls)
			require.Empty(t, p.failed)
		})
	}
}
