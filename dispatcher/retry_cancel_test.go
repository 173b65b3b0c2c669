package dispatcher_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// A job whose child died and that waits out its retry delay resolves at
// once when its context is cancelled, and never runs again. (The dead
// child stayed recorded as the job's, so the cancel took the job for a
// running one, signalled a dead child, and left the future waiting out
// the delay, after which the job ran again.) The delay is an hour: a
// future that waited it out would fail the test's bound by far.
func TestCancelDuringARetryDelayResolvesAtOnce(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	file := filepath.Join(t.TempDir(), "log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := badExit.Schedule(d, exitArg{Code: 3, File: file}, task.WithContext(ctx), task.WithRetries(1, time.Hour))
	require.Eventually(t, func() bool { _, err := os.Stat(file); return err == nil }, 20*time.Second, time.Millisecond, "the first try ran")
	// Its child is reaped (no child of ours left, not even a zombie) in
	// the round that sets the job waiting for its retry.
	require.Eventually(t, func() bool { n, err := childCount(); return err == nil && n == 0 }, 20*time.Second, time.Millisecond, "the first try's child was reaped")
	cancel()
	select {
	case <-r.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a job cancelled while waiting to be retried did not resolve")
	}
	_, err := r.Value()
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce, "Value() error = %v; want a *result.CancelError", err)
	require.ErrorIs(t, err, context.Canceled)
	shutdown(t, d, nil)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "exit", string(b), "the cancelled task ran again")
}

// childCount counts the children of this process, zombies included.
func childCount() (int, error) {
	children, err := testio.Children(os.Getpid())
	return len(children), err
}
