package dispatcher_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// requirePipelined checks that the two calls scheduled on d went to one
// child: both are running (handed to a child, not answered) while one
// child is alive.
func requirePipelined(t *testing.T, d *dispatcher.Dispatcher) {
	t.Helper()
	s := d.Stats()
	require.Equal(t, 2, s.Running, "calls running with two cancellable calls scheduled and one child; want both sent to it")
	require.Zero(t, s.Queued, "calls queued; want none: both in the child")
	require.Equal(t, 1, s.Children, "children alive")
}

// Cancelling the call a reused child runs, with another cancellable call
// pipelined behind it, stops the first alone: the second never saw the
// stop, goes back to the queue without counting as a retry or a death,
// and resolves with its value.
func TestCancelRunningCallRequeuesThePipelinedOneBehindIt(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	g := newGate(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(10), strategy.Pipeline(2)))
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	arg := g.arg()
	arg.WatchCtx = true
	first := hold.Schedule(d, arg, task.WithContext(ctx1))
	second := getPid.Schedule(d, 0, task.WithContext(ctx2))
	g.waitStarted(t, 1)
	requirePipelined(t, d)

	cancel1()
	_, err := await(t, first)
	requireCancel(t, err, hold.Name(), context.Canceled, true)
	pid, err := await(t, second)
	require.NoError(t, err, "the second call's Value(); want its pid, untouched by the first's stop")
	require.Positive(t, pid, "the second call's pid")

	joinAll(t, d)
	g.close()
	s := d.Stats()
	require.Zero(t, s.Retries, "retries counted")
	require.Zero(t, s.Completed[dispatcher.OutcomeDied], "calls that died")
	require.Equal(t, int64(1), s.Completed[dispatcher.OutcomeSucceeded], "calls that succeeded")
	require.Equal(t, int64(1), s.Completed[dispatcher.OutcomeCancelled], "calls cancelled")
	require.Zero(t, s.ChildrenExited[dispatcher.ExitCrashed], "children that crashed")
	shutdown(t, d, snap)
}

// Cancelling a call that waits in a child's pipeline behind a running one
// resolves it without its task ever running, while the first runs on and
// resolves with its value.
func TestCancelPipelinedCallNeverRunsIt(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	g := newGate(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(10), strategy.Pipeline(2)))
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ran := filepath.Join(t.TempDir(), "ran")
	first := hold.Schedule(d, g.arg(), task.WithContext(ctx1))
	second := marker.Schedule(d, ran, task.WithContext(ctx2))
	g.waitStarted(t, 1)
	requirePipelined(t, d)

	cancel2()
	// The second resolves while the first still waits at the gate: the
	// child said it will not begin it.
	_, err := await(t, second)
	requireCancel(t, err, marker.Name(), context.Canceled, false)
	g.open(t, 1)
	pid, err := await(t, first)
	require.NoError(t, err, "the first call's Value(); want its pid")
	require.Positive(t, pid, "the first call's pid")

	joinAll(t, d)
	g.close()
	shutdown(t, d, snap)
	_, err = os.Stat(ran)
	require.True(t, errors.Is(err, os.ErrNotExist), "the cancelled call's marker: %v; want none, its task never ran", err)
	s := d.Stats()
	require.Zero(t, s.Completed[dispatcher.OutcomeDied], "calls that died")
	require.Zero(t, s.ChildrenExited[dispatcher.ExitKilled]+s.ChildrenExited[dispatcher.ExitCrashed], "children killed or crashed; want the child left alone")
}
