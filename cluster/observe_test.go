package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// steps reports steps 1 to n of n, a tenth of a second apart, and burns
// a little CPU.
var steps = task.Define("cluster_test.steps", func(ctx context.Context, n int64) (int64, error) {
	for i := int64(1); i <= n; i++ {
		if err := task.Progress(ctx, i, n); err != nil {
			return 0, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n, nil
})

// TestProgressAndUsageCrossTheCluster runs a call that reports progress
// on a worker: the caller's future sees the reports while it runs, and
// what the call cost once it answered.
func TestProgressAndUsageCrossTheCluster(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	// A worker whose dispatcher measures what calls cost.
	d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithUsage())
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cluster.Serve(ctx, node.Conn(), d, cluster.Slots(1), cluster.WorkerName("w1")) }()
	defer func() {
		stop()
		require.NoError(t, <-served, "Serve")
		require.NoError(t, d.Shutdown(context.Background()))
	}()

	r := steps.Schedule(c, 5)
	seen := make(chan result.Progress, 100)
	r.OnProgress(func(p result.Progress) { seen <- p })
	var first result.Progress
	select {
	case first = <-seen:
	case <-r.Done():
		t.Fatalf("the call answered before a progress report reached its future; want reports while it runs")
	}
	require.Positive(t, first.Done, "the first report's Done")
	require.Equal(t, int64(5), first.Total, "the first report's Total")
	require.Equal(t, 1, first.Attempt, "the first report's Attempt")

	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, int64(5), v)
	u, ok := r.Usage()
	require.True(t, ok, "Usage() of a call that ran on a worker")
	require.Positive(t, u.UserCPU+u.SystemCPU, "its CPU time: %+v", u)
	require.Positive(t, u.MaxRSS, "its peak: %+v", u)
}

// chatty logs n lines with task.Logger, then fails when n is odd.
var chatty = task.Define("cluster_test.chatty", func(ctx context.Context, n int) (int, error) {
	log := task.Logger(ctx)
	for i := 1; i <= n; i++ {
		log.Info("step", "i", i)
	}
	if n%2 == 1 {
		log.Error("giving up ✗", "after", n)
		return 0, errors.New("odd")
	}
	return n, nil
})

// TestTaskLogsCrossTheCluster runs calls that log on a worker: the
// caller's future holds the last lines, as a local one does, for an
// answer and for an error.
func TestTaskLogsCrossTheCluster(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	startWorker(t, node.Conn(), 2)

	ok, failed, quiet := chatty.Schedule(c, 2), chatty.Schedule(c, 25), chatty.Schedule(c, 0)
	v, err := ok.Value()
	require.NoError(t, err)
	require.Equal(t, 2, v)
	require.Equal(t, []string{`INFO step i="1"`, `INFO step i="2"`}, ok.Log(), "Log() of a call that answered")

	_, err = failed.Value()
	var te *result.TaskError
	require.ErrorAs(t, err, &te, "a call that failed on the worker")
	lines := failed.Log()
	require.Len(t, lines, 20, "Log() of a call that logged 26 lines: the last 20")
	require.Equal(t, `INFO step i="7"`, lines[0], "the oldest line kept")
	require.Equal(t, `ERROR giving up ✗ after="25"`, lines[19], "the last line")

	_, err = quiet.Value()
	require.NoError(t, err)
	require.Empty(t, quiet.Log(), "Log() of a call that logged nothing")
}
