package dispatcher_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// dieOnceArg is the argument of progressDieOnce.
type dieOnceArg struct{ Dir string }

// progressDieOnce reports 1 of 2 and exits on its first try (it leaves a
// file in Dir); on the next it reports 2 of 2 and answers.
var progressDieOnce = task.Define("dispatcher_test.progress-die-once", func(ctx context.Context, a dieOnceArg) (int, error) {
	mark := filepath.Join(a.Dir, "tried")
	if _, err := os.Stat(mark); err != nil {
		if err := os.WriteFile(mark, nil, 0o600); err != nil {
			return 0, err
		}
		if err := task.Progress(ctx, 1, 2); err != nil {
			return 0, err
		}
		os.Exit(3)
	}
	return 2, task.Progress(ctx, 2, 2)
})

// TestResultProgress reads a running call's progress from its future:
// the channel that says it changed, the value, and a callback.
func TestResultProgress(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(1))
	r := progressHold.Schedule(d, progressHoldArg{Gate: g.arg(), Done: 3, Total: 10})
	_, ok := r.Progress()
	require.False(t, ok, "Progress() of a call that has not reported yet")
	changed := r.ProgressChanged()
	got := make(chan result.Progress, 10)
	r.OnProgress(func(p result.Progress) { got <- p })
	<-changed
	p, ok := r.Progress()
	require.True(t, ok, "Progress() after ProgressChanged's channel closed")
	require.Equal(t, int64(3), p.Done, "Progress().Done")
	require.Equal(t, int64(10), p.Total, "Progress().Total")
	require.Equal(t, 1, p.Attempt, "Progress().Attempt")
	require.WithinDuration(t, time.Now(), p.Sent, time.Minute, "Progress().Sent")
	require.Equal(t, p, <-got, "what the callback got")

	next := r.ProgressChanged()
	g.open(t, 1)
	_, err := r.Value()
	require.NoError(t, err)
	<-next // closed when the future resolved: no change will come
	<-r.ProgressChanged()
	p2, ok := r.Progress()
	require.True(t, ok)
	require.Equal(t, p, p2, "Progress() once the call answered: its last report")
}

// TestResultProgressAcrossARetry checks that a retry's reports say which
// try made them.
func TestResultProgressAcrossARetry(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	events, cancel := d.Subscribe(1000)
	defer cancel()
	r := progressDieOnce.Schedule(d, dieOnceArg{Dir: t.TempDir()}, task.WithRetries(1, 0))
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 2, v)
	p, ok := r.Progress()
	require.True(t, ok)
	require.Equal(t, result.Progress{Done: 2, Total: 2, Attempt: 2, Sent: p.Sent}, p, "Progress() after a retry")
	require.NoError(t, d.Shutdown(context.Background()))
	var attempts []int
	for e := range events {
		if e.Kind == dispatcher.TaskProgress {
			attempts = append(attempts, e.Progress.Attempt)
		}
	}
	require.Equal(t, []int{1, 2}, attempts, "the attempts of the progress events")
}

// TestSlowProgressCallbackHoldsNothingUp registers a callback that blocks
// until the call has answered: the call goes on and resolves, and the
// callback then sees the latest report, not each one it missed.
func TestSlowProgressCallbackHoldsNothingUp(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	r := progressSteps.Schedule(d, stepsArg{N: 5, Pause: 250 * time.Millisecond})
	release := make(chan struct{})
	got := make(chan result.Progress, 10)
	r.OnProgress(func(p result.Progress) {
		got <- p
		<-release
	})
	first := <-got
	require.Equal(t, int64(1), first.Done, "the callback's first report")
	v, err := r.Value() // the callback still blocks
	require.NoError(t, err)
	require.Equal(t, int64(5), v)
	close(release)
	last := <-got
	require.Equal(t, int64(5), last.Done, "the callback's second report; want the latest, coalesced")
	require.NoError(t, d.Shutdown(context.Background()))
	select {
	case p := <-got:
		t.Fatalf("a third callback with %+v; want two, the reports between coalesced", p)
	default:
	}
}

// TestResultUsageAndLog reads what a call cost and what it logged from
// its future, and that a call that never started has no usage.
func TestResultUsageAndLog(t *testing.T) {
	checkLeaks(t)
	plain := start(t, strategy.Throttled(1))
	r0 := logSome.Schedule(plain, 0)
	_, err := r0.Value()
	require.NoError(t, err)
	_, ok := r0.Usage()
	require.False(t, ok, "Usage() of a call that answered, on a dispatcher without WithUsage")
	require.NoError(t, plain.Shutdown(context.Background()))

	d := start(t, strategy.Throttled(1), dispatcher.WithUsage())
	r := logSome.Schedule(d, 0)
	_, err = r.Value()
	require.NoError(t, err)
	u, ok := r.Usage()
	require.True(t, ok, "Usage() of a call that answered")
	require.Positive(t, u.UserCPU+u.SystemCPU, "Usage() CPU time: %+v", u)
	require.Positive(t, u.MaxRSS, "Usage() MaxRSS: %+v", u)
	log := r.Log()
	require.Len(t, log, 1, "Log(): %q", log)
	require.True(t, strings.HasPrefix(log[0], "INFO a step "), "Log()[0] = %q", log[0])
	require.Contains(t, log[0], `g.what="first"`)
	require.NoError(t, d.Shutdown(context.Background()))

	late := logSome.Schedule(d, 0)
	require.ErrorIs(t, late.Err(), dispatcher.ErrClosed)
	_, ok = late.Usage()
	require.False(t, ok, "Usage() of a call that never started")
	require.Empty(t, late.Log(), "Log() of a call that never started")
}
