package task_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// beat sends n heartbeats from the task's goroutine and n from
	// another, at once.
	beat = task.Define("task_test.runtime.beat", func(ctx context.Context, n int) (int, error) {
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		wg.Go(func() {
			for range n {
				errs <- task.Heartbeat(ctx)
			}
		})
		for range n {
			errs <- task.Heartbeat(ctx)
		}
		wg.Wait()
		close(errs)
		sent := 0
		for err := range errs {
			if err != nil {
				return sent, err
			}
			sent++
		}
		return sent, nil
	})
	// lockAndTry takes the named lock with task.Lock, then checks that
	// task.TryLock on the same name in the same task finds it held (two
	// holders in one process exclude each other), and releases it.
	lockAndTry = task.Define("task_test.runtime.lock", func(ctx context.Context, name string) (string, error) {
		l, err := task.Lock(ctx, name)
		if err != nil {
			return "", err
		}
		defer l.Unlock()
		if l2, err := task.TryLock(ctx, name); !errors.Is(err, lock.ErrHeld) {
			l2.Unlock()
			return "", fmt.Errorf("TryLock of a lock the task holds = %v; want lock.ErrHeld", err)
		}
		ran := false
		if err := task.Synchronize(ctx, name+".2", func() error { ran = true; return nil }); err != nil || !ran {
			return "", fmt.Errorf("Synchronize = %v, ran %v", err, ran)
		}
		return "ok", l.Unlock()
	})
	// worker is a server-mode worker, scheduled here like a task: it
	// returns its argument as an error, or nil if it is empty.
	worker = task.DefineWorker("task_test.runtime.worker", func(ctx context.Context, msg string) error {
		if msg != "" {
			return errors.New(msg)
		}
		return nil
	})
)

// Outside a child, the runtime calls say so and do nothing.
func TestRuntimeCallsOutsideAChildFailWithErrNotInChild(t *testing.T) {
	ctx := context.Background()
	require.ErrorIs(t, task.Heartbeat(ctx), task.ErrNotInChild)
	_, err := task.Lock(ctx, "a")
	require.ErrorIs(t, err, task.ErrNotInChild)
	_, err = task.TryLock(ctx, "a")
	require.ErrorIs(t, err, task.ErrNotInChild)
	ran := false
	err = task.Synchronize(ctx, "a", func() error { ran = true; return nil })
	require.ErrorIs(t, err, task.ErrNotInChild)
	require.False(t, ran, "Synchronize ran f without the lock")
	require.Equal(t, "task: not called with the context of a task running in a child process", task.ErrNotInChild.Error())
}

// In a child, Heartbeat works from any goroutine of the task.
func TestHeartbeatWorksFromAnyGoroutineOfATask(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	n, err := beat.Schedule(d, 50).Value()
	require.NoError(t, err)
	require.Equal(t, 100, n)
}

// A task takes locks from its dispatcher's directory, with or without a
// deadline on its call (its context then carries both).
func TestATaskLocksInItsDispatchersDirectory(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	for _, opts := range [][]task.CallOption{
		nil,
		{task.WithTimeout(30 * time.Second)},
		{task.WithContext(context.Background())},
	} {
		got, err := lockAndTry.Schedule(d, "runtime", opts...).Value()
		require.NoError(t, err, "with %d call options", len(opts))
		require.Equal(t, "ok", got)
	}
}

// DefineWorker defines a task with an empty result: it may be scheduled,
// and its error is the task's.
func TestDefineWorkerDefinesATaskWithAnEmptyResult(t *testing.T) {
	leakcheck.Check(t)
	require.Equal(t, "task_test.runtime.worker", worker.Name())
	require.True(t, defined(worker.Name()), "the worker is not defined")
	d := startDispatcher(t, strategy.Simple())
	v, err := worker.Schedule(d, "").Value()
	require.NoError(t, err)
	require.Equal(t, struct{}{}, v)
	_, err = worker.Schedule(d, "it failed").Value()
	var te *result.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "it failed", te.Message)
}

func TestDefineWorkerPanicsOnABadNameOrFunction(t *testing.T) {
	require.PanicsWithValue(t, `task: DefineWorker("task_test.runtime.nil") with a nil function`, func() {
		task.DefineWorker[int]("task_test.runtime.nil", nil)
	})
	require.PanicsWithValue(t, "task: Define with an empty name", func() {
		task.DefineWorker("", func(ctx context.Context, n int) error { return nil })
	})
	require.Panics(t, func() {
		task.DefineWorker(worker.Name(), func(ctx context.Context, s string) error { return nil })
	}, "a name already taken")
}
