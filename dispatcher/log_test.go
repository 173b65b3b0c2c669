package dispatcher_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// logSome logs one record with attributes and a group, and answers
	// its pid.
	logSome = task.Define("dispatcher_test.log-some", func(ctx context.Context, _ int) (int, error) {
		task.Logger(ctx).WithGroup("g").Info("a step", "n", 1, "what", "first")
		return os.Getpid(), nil
	})
	// logFlood logs n records as fast as it can.
	logFlood = task.Define("dispatcher_test.log-flood", func(ctx context.Context, n int) (int, error) {
		l := task.Logger(ctx)
		for i := range n {
			l.Info("flood", "i", i)
		}
		return n, nil
	})
)

// TestTaskLogsReachTheParent checks that a record a task logs reaches the
// dispatcher's logger, tagged with the task, the call and the pid.
func TestTaskLogsReachTheParent(t *testing.T) {
	checkLeaks(t)
	var log syncBuffer
	d := start(t, strategy.Throttled(1), dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})))
	pid, err := logSome.Schedule(d, 0).Value()
	require.NoError(t, err)
	require.NoError(t, d.Shutdown(context.Background()))
	var line string
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, "a step") {
			line = l
		}
	}
	require.NotEmpty(t, line, "the task's record in the parent's log:\n%s", log.String())
	for _, want := range []string{"[INFO]", "task=" + logSome.Name(), "call=1", "pid=" + strconv.Itoa(pid), "g.n=1", "g.what=first"} {
		require.Contains(t, line, want, "the task's record in the parent's log")
	}
}

// TestTaskLogFloodIsBounded runs a task that logs 20000 records at once:
// about the burst reaches the parent, and the parent hears how many were
// dropped.
func TestTaskLogFloodIsBounded(t *testing.T) {
	checkLeaks(t)
	var log syncBuffer
	d := start(t, strategy.Throttled(1), dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})))
	began := time.Now()
	_, err := logFlood.Schedule(d, 20000).Value()
	require.NoError(t, err)
	took := time.Since(began)
	require.NoError(t, d.Shutdown(context.Background()))
	out := log.String()
	n := strings.Count(out, " flood:")
	limit := 100 + int(took.Seconds()*50) + 1
	require.Positive(t, n, "flood records in the parent's log")
	require.LessOrEqual(t, n, limit, "flood records in the parent's log, for 20000 logged in %v; want the burst of 100 and 50 a second at most", took)
	require.Contains(t, out, "the task's log records over the rate were dropped", "the parent's log; want the count of what was dropped")
	require.Contains(t, out, "dropped=", "the parent's log; want the count of what was dropped")
}
