package cluster_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// inactive waits for its context without a heartbeat: its activity
// timeout kills it.
var inactive = task.Define("cluster_test.inactive", func(ctx context.Context, _ int) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
})

// Each error that a call ends with on its worker comes back as the same
// type inside a *cluster.WorkerError, so that errors.As and errors.Is work
// in the caller as they do for a local dispatcher.
func TestErrorsCross(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	startWorker(t, node.Conn(), 2, cluster.WorkerName("w1"))

	checkWorker := func(t *testing.T, err error) {
		t.Helper()
		var we *cluster.WorkerError
		require.ErrorAs(t, err, &we)
		require.Equal(t, "w1", we.Worker, "the worker named in the error")
		require.Contains(t, err.Error(), "cluster: worker w1: ")
	}

	t.Run("TaskError", func(t *testing.T) {
		_, err := fails.Schedule(c, "no luck").Value()
		checkWorker(t, err)
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Equal(t, "no luck", te.Message)
		require.Equal(t, fails.Name(), te.Task)
		require.False(t, te.Panicked)
		require.NotZero(t, te.Pid, "the pid of the child that ran it")
	})
	t.Run("TaskError panicked", func(t *testing.T) {
		_, err := panics.Schedule(c, "boom").Value()
		checkWorker(t, err)
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.True(t, te.Panicked, "Panicked of %v", te)
		require.Contains(t, te.Stack, "cluster_test", "the panic's stack")
	})
	t.Run("ChildDeath", func(t *testing.T) {
		_, err := exits.Schedule(c, 3).Value()
		checkWorker(t, err)
		var cd *result.ChildDeath
		require.ErrorAs(t, err, &cd)
		require.Equal(t, 3, cd.ExitCode)
		require.Equal(t, exits.Name(), cd.Task)
	})
	t.Run("RetryError", func(t *testing.T) {
		_, err := exits.Schedule(c, 4, task.WithRetries(1, time.Millisecond)).Value()
		checkWorker(t, err)
		var re *result.RetryError
		require.ErrorAs(t, err, &re)
		require.Len(t, re.Deaths, 2, "the deaths of both tries")
		var cd *result.ChildDeath
		require.ErrorAs(t, err, &cd, "a RetryError unwraps to its deaths")
		require.Equal(t, 4, cd.ExitCode)
	})
	t.Run("ErrInactive", func(t *testing.T) {
		_, err := inactive.Schedule(c, 0, task.WithActivityTimeout(100*time.Millisecond)).Value()
		checkWorker(t, err)
		require.ErrorIs(t, err, dispatcher.ErrInactive)
		var cd *result.ChildDeath
		require.ErrorAs(t, err, &cd)
		require.Equal(t, syscall.SIGKILL, cd.Signal)
	})
	t.Run("CancelError", func(t *testing.T) {
		_, err := inactive.Schedule(c, 0, task.WithTimeout(200*time.Millisecond)).Value()
		checkWorker(t, err)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var ce *result.CancelError
		require.ErrorAs(t, err, &ce)
		require.True(t, ce.Started, "the call was running when its deadline passed: %v", ce)
	})
}
