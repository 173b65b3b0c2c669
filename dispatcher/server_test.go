package dispatcher_test

// Server mode (strategy.SpawnN): the gem's server_spec, ported, and the
// restart policy, the activity check and the shutdown of workers.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// How long the server tests wait for what must happen: generous, because
// under -race on a loaded machine a child takes a while to start.
const (
	serverWait = 20 * time.Second
	serverTick = 10 * time.Millisecond
)

// waitStarts waits until at least n workers in dir have logged their
// start, and returns the pids of those that did.
func waitStarts(t *testing.T, dir string, n int) []int {
	t.Helper()
	require.Eventually(t, func() bool {
		events, err := readServerLog(dir)
		return err == nil && len(pidsOf(events, "start")) >= n
	}, serverWait, serverTick, "waiting for %d workers to start", n)
	return started(t, dir)
}

// waitValue is r.Value() that fails the test rather than hang when the
// future does not resolve within serverWait.
func waitValue[T any](t *testing.T, r *result.Result[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), serverWait)
	defer cancel()
	v, err := r.Wait(ctx)
	if !r.Ready() {
		t.Fatalf("the future did not resolve in %v", serverWait)
	}
	return v, err
}

// bufferLogger returns a logger that writes everything, debug and up, to
// the returned buffer.
func bufferLogger() (hclog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return hclog.New(&hclog.LoggerOptions{Name: "dispatcher", Output: buf, Level: hclog.Debug}), buf
}

// logLine returns the first line of log that contains all of parts, or "".
func logLine(log string, parts ...string) string {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}

// server_spec: "spawns n workers".
func TestServerSpec_SpawnsNWorkers(t *testing.T) {
	checkLeaks(t)
	const n = 5
	dir := t.TempDir()
	d := start(t, strategy.SpawnN(n, serverWorker, serverArg{Dir: dir, Mode: workerWatch}))

	pids := waitStarts(t, dir, n)
	require.Len(t, pids, n)
	slices.Sort(pids)
	require.Len(t, slices.Compact(slices.Clone(pids)), n, "pids %v: want %d different ones", pids, n)
	require.ElementsMatch(t, pids, aliveOf(pids), "every worker runs")
	require.NoError(t, d.Err(), "a healthy server has not failed")

	shutdown(t, d, nil)
	require.Len(t, started(t, dir), n, "workers started in all: exactly n, none after Shutdown")
	require.ElementsMatch(t, pids, stopped(t, dir), "every worker returned through its context")
	require.Empty(t, aliveOf(pids), "no worker runs after Shutdown")
}

// server_spec: "respawns workers until there are n workers again". The gem
// sent SIGQUIT; SIGKILL leaves the worker no say.
func TestServerSpec_RespawnsKilledWorkers(t *testing.T) {
	checkLeaks(t)
	const n = 5
	dir := t.TempDir()
	d := start(t, strategy.SpawnN(n, serverWorker, serverArg{Dir: dir, Mode: workerWatch}))

	pids := waitStarts(t, dir, n)
	killed := pids[:2]
	for _, pid := range killed {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}

	all := waitStarts(t, dir, n+2)
	fresh := all[n:]
	require.Len(t, fresh, 2, "two workers replace the two killed")
	for _, pid := range fresh {
		require.NotContains(t, pids, pid, "a replacement has a new pid")
	}
	require.Eventually(t, func() bool {
		return len(aliveOf(all)) == n && len(aliveOf(killed)) == 0
	}, serverWait, serverTick, "n workers alive again, the killed ones gone")
	require.ElementsMatch(t, append(slices.Clone(pids[2:]), fresh...), aliveOf(all))
	require.NoError(t, d.Err())

	shutdown(t, d, nil)
	require.Len(t, started(t, dir), n+2, "no worker started but the n and the two replacements")
	require.Empty(t, aliveOf(all))
}

// Shutdown and Close end workers through their context: the child turns
// the stop frame (Shutdown; Close sends one too, and SIGTERM) into
// cancellation. A worker
// that watches its context returns long before the grace period; one that
// ignores it is killed when the grace period is over.
func TestServerStopsWorkers(t *testing.T) {
	for _, how := range []string{"Shutdown", "Close"} {
		stop := func(d *dispatcher.Dispatcher) error {
			if how == "Close" {
				return d.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), serverWait)
			defer cancel()
			return d.Shutdown(ctx)
		}

		t.Run(how+"/watching their context", func(t *testing.T) {
			checkLeaks(t)
			const grace = 20 * time.Second
			dir := t.TempDir()
			d := start(t, strategy.SpawnN(3, serverWorker, serverArg{Dir: dir, Mode: workerWatch}),
				dispatcher.WithGracePeriod(grace))
			pids := waitStarts(t, dir, 3)

			begin := time.Now()
			require.NoError(t, stop(d))
			took := time.Since(begin)

			require.Less(t, took, grace/4, "%s waited for the grace period: the workers did not see their context end", how)
			require.ElementsMatch(t, pids, stopped(t, dir), "every worker returned through its context")
			require.Empty(t, aliveOf(pids))
			require.Len(t, started(t, dir), 3, "no worker was started while stopping")
		})

		t.Run(how+"/ignoring their context", func(t *testing.T) {
			checkLeaks(t)
			const grace = 300 * time.Millisecond
			dir := t.TempDir()
			d := start(t, strategy.SpawnN(2, serverWorker, serverArg{Dir: dir, Mode: workerIgnore}),
				dispatcher.WithGracePeriod(grace))
			pids := waitStarts(t, dir, 2)

			begin := time.Now()
			require.NoError(t, stop(d))
			took := time.Since(begin)

			require.GreaterOrEqual(t, took, grace, "%s returned before the grace period was over", how)
			require.Empty(t, stopped(t, dir), "the workers ignored their context")
			require.Empty(t, aliveOf(pids), "the workers were killed")
			require.Len(t, started(t, dir), 2, "no worker was started while stopping")
		})
	}
}

// A worker that exits at once is restarted at most MaxRestarts times, with
// a pause that grows between starts; then the server gives up, says so
// through Err and the log, and the dispatcher shuts down (Done).
func TestServerGivesUpPastMaxRestartsAndSaysSo(t *testing.T) {
	checkLeaks(t)
	const (
		restarts = 3
		base     = 100 * time.Millisecond
		most     = 800 * time.Millisecond
	)
	dir := t.TempDir()
	logger, logBuf := bufferLogger()
	d := start(t, strategy.SpawnN(1, serverWorker, serverArg{Dir: dir, Mode: workerExit},
		strategy.MaxRestarts(restarts, time.Minute), strategy.Backoff(base, most)),
		dispatcher.WithLogger(logger))

	select {
	case <-d.Done():
	case <-time.After(serverWait):
		t.Fatalf("Done() not closed after %v; the workers started %d times", serverWait, len(started(t, dir)))
	}

	err := d.Err()
	var limit *strategy.RestartLimitError
	require.ErrorAs(t, err, &limit, "Err() = %v; want a *strategy.RestartLimitError", err)
	require.Equal(t, serverWorker.Name(), limit.Worker)
	require.Equal(t, restarts, limit.Restarts)
	require.Equal(t, time.Minute, limit.Period)
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death, "Err() = %v; want it to wrap the last worker's *result.ChildDeath", err)
	require.Equal(t, serverWorker.Name(), death.Task)
	require.Equal(t, workerExitCode, death.ExitCode)
	require.Contains(t, err.Error(), serverWorker.Name())

	line := logLine(logBuf.String(), "[ERROR]", "the strategy gave up")
	require.NotEmpty(t, line, "no error event in the log:\n%s", logBuf.String())
	require.Contains(t, line, serverWorker.Name())

	shutdown(t, d, nil)
	events := serverLog(t, dir)
	require.Len(t, events, 1+restarts, "the worker started once and was restarted %d times, no more: %v", restarts, events)

	// Each restart waits its backoff (base, doubled each time) after the
	// death, which comes after the start: the gap between two starts is at
	// least the backoff. The backoffs (100, 200, 400 ms) are larger than a
	// worker's start, so a server whose pause did not grow would leave
	// the last gap short of its bound. There is no upper bound, for a
	// loaded machine; nor a check that each gap exceeds the one before,
	// since one slow start can lengthen a gap more than the backoff grows.
	var gaps []time.Duration
	for i := 1; i < len(events); i++ {
		gaps = append(gaps, events[i].At.Sub(events[i-1].At))
	}
	t.Logf("gaps between starts: %v", gaps)
	backoff := base
	for i, g := range gaps {
		require.GreaterOrEqual(t, g, backoff, "gap %d = %v; want at least the backoff %v", i, g, backoff)
		backoff = min(2*backoff, most)
	}
}

// A worker that returns, rather than dies, is replaced too, and counts
// against the limit; the limit's error then wraps nothing.
func TestServerReplacesWorkersThatReturn(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	d := start(t, strategy.SpawnN(1, serverWorker, serverArg{Dir: dir, Mode: workerReturn},
		strategy.MaxRestarts(1, time.Minute), strategy.Backoff(10*time.Millisecond, 20*time.Millisecond)))

	select {
	case <-d.Done():
	case <-time.After(serverWait):
		t.Fatalf("Done() not closed after %v", serverWait)
	}
	var limit *strategy.RestartLimitError
	require.ErrorAs(t, d.Err(), &limit)
	require.NoError(t, limit.Last, "the last worker returned nil")
	require.NotContains(t, d.Err().Error(), "the last")
	shutdown(t, d, nil)
	require.Len(t, started(t, dir), 2, "started once, restarted once")
	require.Len(t, stopped(t, dir), 2, "each worker returned")
}

// The activity check: lazy workers (no heartbeats) are killed and replaced,
// and their deaths say why.
func TestServerActivity_LazyWorkersAreReplaced(t *testing.T) {
	checkLeaks(t)
	const (
		n        = 2
		activity = 300 * time.Millisecond
		restarts = 2
	)
	dir := t.TempDir()
	logger, logBuf := bufferLogger()
	// Let the server give up after two replacements: its error then
	// carries the last death, whose cause is ErrInactive.
	d := start(t, strategy.SpawnN(n, serverWorker, serverArg{Dir: dir, Mode: workerLazy},
		strategy.CallOptions(task.WithActivityTimeout(activity)), strategy.MaxRestarts(restarts, time.Minute),
		strategy.Backoff(10*time.Millisecond, 100*time.Millisecond)),
		dispatcher.WithLogger(logger))

	select {
	case <-d.Done():
	case <-time.After(serverWait):
		t.Fatalf("Done() not closed after %v; the workers started %d times", serverWait, len(started(t, dir)))
	}
	err := d.Err()
	require.ErrorIs(t, err, dispatcher.ErrInactive, "Err() = %v", err)
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death)
	require.Equal(t, syscall.SIGKILL, death.Signal, "the lazy worker was killed")
	require.GreaterOrEqual(t, death.Duration, activity, "killed before its activity timeout")
	require.NotEmpty(t, logLine(logBuf.String(), "[WARN]", "sent no heartbeat"), "log:\n%s", logBuf.String())

	shutdown(t, d, nil)
	// Every worker the server started was lazy, so at most n+restarts
	// ran. A worker records its start from its task, so one killed for
	// inactivity before its task ran (a slow start on a loaded machine)
	// or stopped by Shutdown just after its spawn records none.
	pids := started(t, dir)
	require.LessOrEqual(t, len(pids), n+restarts, "n workers and at most %d replacements: %v", restarts, pids)
	// The first n were killed. Of the replacements, the first killed made
	// the server give up; the other may have been stopped by Shutdown.
	gone := stopped(t, dir)
	require.LessOrEqual(t, len(gone), 1, "lazy workers that returned through their context: %v", gone)
	// A first worker records its start before its activity timeout kills
	// it, and so before any replacement starts: when every worker
	// recorded one, the first n records are the first n workers. When one
	// recorded none, a replacement may stand among the first n records.
	if len(pids) == n+restarts {
		for _, pid := range pids[:n] {
			require.NotContains(t, gone, pid, "the lazy worker %d returned: it was not killed", pid)
		}
	}
}

// Busy workers (heartbeats well within the timeout) are left alone, and
// without an activity timeout no worker is killed for being quiet.
func TestServerActivity_BusyAndUncheckedWorkersAreLeftAlone(t *testing.T) {
	checkLeaks(t)
	// The activity clock runs from the spawn: the timeout leaves room for
	// a slow start on a loaded machine, and is twenty times the beat.
	const (
		n        = 2
		activity = time.Second
		watch    = 3 * activity
	)
	busyDir, quietDir := t.TempDir(), t.TempDir()
	busy := start(t, strategy.SpawnN(n, serverWorker, serverArg{Dir: busyDir, Mode: workerBusy, Beat: 50 * time.Millisecond},
		strategy.CallOptions(task.WithActivityTimeout(activity))))
	quiet := start(t, strategy.SpawnN(n, serverWorker, serverArg{Dir: quietDir, Mode: workerLazy}))

	busyPids := waitStarts(t, busyDir, n)
	quietPids := waitStarts(t, quietDir, n)
	// Watching for something not to happen takes a while: three times the
	// activity timeout.
	time.Sleep(watch)
	require.Equal(t, busyPids, started(t, busyDir), "a busy worker was replaced")
	require.Equal(t, quietPids, started(t, quietDir), "a quiet worker was replaced with no activity timeout set")
	require.ElementsMatch(t, busyPids, aliveOf(busyPids))
	require.ElementsMatch(t, quietPids, aliveOf(quietPids))
	require.NoError(t, busy.Err())
	require.NoError(t, quiet.Err())

	shutdown(t, busy, nil)
	shutdown(t, quiet, nil)
	require.ElementsMatch(t, busyPids, stopped(t, busyDir), "the busy workers returned through their context")
	require.ElementsMatch(t, quietPids, stopped(t, quietDir), "the quiet workers returned through their context")
}

// beatArg is the argument of beating.
type beatArg struct {
	Every, For time.Duration
}

// beating sends a heartbeat every a.Every for a.For, and answers how many
// it sent.
var beating = task.Define("dispatcher_test.server.beating", func(ctx context.Context, a beatArg) (int, error) {
	n := 0
	end := time.Now().Add(a.For)
	for time.Now().Before(end) {
		if err := task.Heartbeat(ctx); err != nil {
			return n, err
		}
		n++
		time.Sleep(a.Every)
	}
	return n, nil
})

// task.WithActivityTimeout on a scheduled task: a silent one is killed and
// its future says why; one that sends heartbeats runs to its end.
func TestActivityTimeoutOfAScheduledTask(t *testing.T) {
	checkLeaks(t)
	const activity = 300 * time.Millisecond
	g := newGate(t)
	logger, logBuf := bufferLogger()
	d := start(t, strategy.Simple(), dispatcher.WithLogger(logger))

	silent := hold.Schedule(d, g.arg(), task.WithActivityTimeout(activity))
	// The beating task's timeout is longer, so that a slow start on a
	// loaded machine (the clock runs from the spawn) is not taken for
	// silence; it runs for longer than that timeout.
	const beatActivity = time.Second
	beats := beating.Schedule(d, beatArg{Every: 50 * time.Millisecond, For: 3 * beatActivity / 2}, task.WithActivityTimeout(beatActivity))
	// The silent task runs, and will never get a token; or its child took
	// longer than the timeout to start, and was killed as silent all the
	// same, before it reached the gate.
	g.startedBefore(t, silent.Done())

	_, err := waitValue(t, silent)
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death, "Value() = %v; want a *result.ChildDeath", err)
	require.ErrorIs(t, err, dispatcher.ErrInactive)
	require.Equal(t, hold.Name(), death.Task)
	require.Equal(t, syscall.SIGKILL, death.Signal)
	require.GreaterOrEqual(t, death.Duration, activity)
	require.NotEmpty(t, logLine(logBuf.String(), "[WARN]", "sent no heartbeat", hold.Name()), "log:\n%s", logBuf.String())

	n, err := waitValue(t, beats)
	require.NoError(t, err, "a task that sends heartbeats was killed")
	require.Greater(t, n, 4, "heartbeats sent")
	shutdown(t, d, nil)
}

// A misconfigured server is refused at Start, with the reason.
func TestStartRefusesAMisconfiguredServer(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		s    strategy.Strategy
		want string
	}{
		{strategy.SpawnN(0, serverWorker, serverArg{}), "SpawnN(0)"},
		{strategy.SpawnN[serverArg](1, nil, serverArg{}), "nil worker"},
		{strategy.SpawnN(1, serverWorker, serverArg{}, strategy.MaxRestarts(-1, time.Minute)), "MaxRestarts(-1"},
		{strategy.SpawnN(1, serverWorker, serverArg{}, strategy.Backoff(2*time.Second, time.Second)), "Backoff(2s, 1s)"},
		{strategy.SpawnN(1, serverWorker, serverArg{}, strategy.CallOptions(task.WithRetries(1, time.Second))), "task.WithRetries does not apply to workers"},
	} {
		d, err := dispatcher.Start(tc.s)
		require.Error(t, err, "Start(%v)", tc.s)
		require.Nil(t, d)
		require.Contains(t, err.Error(), tc.want)
		require.True(t, strings.HasPrefix(err.Error(), "dispatcher: refusing the strategy: strategy: "), "error %q", err)
	}
}

// Scheduled tasks are not run by a server: it starts children only for its
// workers. A task scheduled on it fails at once with ErrNoTasks, rather
// than wait in a queue that nothing serves.
func TestServerRunsNoScheduledTasks(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	d := start(t, strategy.SpawnN(1, serverWorker, serverArg{Dir: dir, Mode: workerWatch}))
	waitStarts(t, dir, 1)
	r := square.Schedule(d, 3)
	require.True(t, r.Ready())
	_, err := r.Value()
	require.ErrorIs(t, err, dispatcher.ErrNoTasks, "Value() = %v", err)
	require.NoError(t, d.Close())
	require.Len(t, started(t, dir), 1)
}

// A task scheduled on a server neither hangs Shutdown nor waits itself.
func TestServerShutdownWithAScheduledTask(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	d := start(t, strategy.SpawnN(1, serverWorker, serverArg{Dir: dir, Mode: workerWatch}))
	waitStarts(t, dir, 1)
	r := square.Schedule(d, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.True(t, r.Ready(), "a task scheduled on a server fails at once")
	require.ErrorIs(t, r.Err(), dispatcher.ErrNoTasks)
	require.NoError(t, d.Shutdown(ctx), "Shutdown waited for a task that the server never starts")
}

// envStartedDir names a directory where each child started by this test
// binary leaves a file, "started-<pid>" (see TestMain).
const envStartedDir = "DISPATCHER_TEST_STARTED_DIR"

type bigWorkerArg struct {
	Dir string // where the worker leaves "ran-<pid>"
	Pad string // what makes the invocation larger than a pipe holds
}

var bigWorker = task.Define("dispatcher_test.server.big-worker", func(ctx context.Context, a bigWorkerArg) (struct{}, error) {
	if err := os.WriteFile(filepath.Join(a.Dir, "ran-"+strconv.Itoa(os.Getpid())), nil, 0o644); err != nil {
		return struct{}{}, err
	}
	<-ctx.Done()
	return struct{}{}, nil
})

// A stop (Shutdown's, here) goes on the control pipe, and can reach a
// worker while its invocation, larger than the pipe, is still being
// written. The worker must still get the whole invocation and run: a
// child that gave up on the half it had read exited without running its
// worker (4 to 9 workers of 10 ran, before the child waited for the rest).
func TestShutdownDoesNotOvertakeAWorkersLargeInvocation(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	t.Setenv(envStartedDir, dir)
	for _, delay := range []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond} {
		d, err := dispatcher.Start(strategy.SpawnN(2, bigWorker, bigWorkerArg{Dir: dir, Pad: strings.Repeat("p", 300<<10)}),
			dispatcher.WithGracePeriod(10*time.Second))
		require.NoError(t, err)
		time.Sleep(delay) // not a wait for an event: the delays spread the stop over the invocation's writing
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		require.NoError(t, d.Shutdown(ctx))
		cancel()
	}
	started, _ := filepath.Glob(filepath.Join(dir, "started-*"))
	ran, _ := filepath.Glob(filepath.Join(dir, "ran-*"))
	require.NotEmpty(t, started)
	require.Len(t, ran, len(started), "every worker child that started ran its worker")
}
