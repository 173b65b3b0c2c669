package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// stepsArg is the argument of progressSteps.
type stepsArg struct {
	N     int64
	Pause time.Duration // between two steps
}

var (
	// progressSteps reports steps 1 to N of N, pausing between them, and
	// answers N.
	progressSteps = task.Define("dispatcher_test.progress-steps", func(ctx context.Context, a stepsArg) (int64, error) {
		for i := int64(1); i <= a.N; i++ {
			if err := task.Progress(ctx, i, a.N); err != nil {
				return 0, err
			}
			time.Sleep(a.Pause)
		}
		return a.N, nil
	})
	// progressFlood reports progress as fast as it can for d, and answers
	// the last count it reported.
	progressFlood = task.Define("dispatcher_test.progress-flood", func(ctx context.Context, d time.Duration) (int64, error) {
		end := time.Now().Add(d)
		var i int64
		for time.Now().Before(end) {
			i++
			if err := task.Progress(ctx, i, 0); err != nil {
				return 0, err
			}
		}
		return i, nil
	})
	// progressLeak leaves a goroutine behind that reports progress -1 of
	// -1 with the call's context, without end, and answers at once.
	progressLeak = task.Define("dispatcher_test.progress-leak", func(ctx context.Context, _ int) (int, error) {
		go func() {
			for {
				_ = task.Progress(ctx, -1, -1)
				time.Sleep(time.Millisecond)
			}
		}()
		return 0, nil
	})
)

// progressEvents returns the progress events of call among events.
func progressEvents(events []dispatcher.Event, call uint64) []dispatcher.Event {
	var out []dispatcher.Event
	for _, e := range events {
		if e.Kind == dispatcher.TaskProgress && e.Call == call {
			out = append(out, e)
		}
	}
	return out
}

// collect shuts d down and returns every event of the subscription.
func collect(t *testing.T, d *dispatcher.Dispatcher, events <-chan dispatcher.Event, snap *leakcheck.Snapshot) []dispatcher.Event {
	t.Helper()
	shutdown(t, d, snap)
	var got []dispatcher.Event
	for e := range events {
		require.Zero(t, e.Dropped, "events dropped from a channel of 10000")
		got = append(got, e)
	}
	return got
}

// TestProgressFloodIsCoalesced runs a task that reports progress as fast
// as it can: a few reports a second reach the parent, and the last one,
// the task's final count, comes before the answer.
func TestProgressFloodIsCoalesced(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1))
	events, cancel := d.Subscribe(10000)
	defer cancel()
	const run = 600 * time.Millisecond
	n, err := progressFlood.Schedule(d, run).Value()
	require.NoError(t, err)
	got := collect(t, d, events, snap)

	ps := progressEvents(got, 1)
	require.NotEmpty(t, ps, "progress events of the flooding call")
	require.LessOrEqual(t, len(ps), int(run/(200*time.Millisecond))+2, "progress events for %d reports in %v; want a few a second", n, run)
	last := ps[len(ps)-1]
	require.Equal(t, n, last.Progress.Done, "the last progress event's Done; want the last count reported")
	require.Equal(t, 1, last.Progress.Attempt, "the last progress event's Attempt")
	require.False(t, last.Progress.Sent.IsZero(), "the last progress event's Sent")
	var lastProgress, done int
	for i, e := range got {
		switch {
		case e.Kind == dispatcher.TaskProgress:
			lastProgress = i
		case e.Kind == dispatcher.TaskDone:
			done = i
		}
	}
	require.Less(t, lastProgress, done, "the last progress event's place; want it before TaskDone")
}

// TestProgressIsASignOfLife runs a task that reports progress and sends
// no heartbeat, for longer than its activity timeout: it is not killed.
func TestProgressIsASignOfLife(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	// The activity clock runs from the spawn, so the timeout leaves room
	// for a slow start on a loaded machine; the task runs for longer
	// than the timeout all the same.
	n, err := progressSteps.Schedule(d, stepsArg{N: 12, Pause: 200 * time.Millisecond}, task.WithActivityTimeout(1500*time.Millisecond)).Value()
	require.NoError(t, err, "a task that reports progress every 200 ms for 2.4 s, with an activity timeout of 1.5 s")
	require.Equal(t, int64(12), n)
}

// TestProgressAfterAnswerIsDropped runs a call that leaves a goroutine
// reporting progress with its context, and then a second call in the
// same child: the second call gets none of the first's reports.
func TestProgressAfterAnswerIsDropped(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1, strategy.Reuse(2)))
	events, cancel := d.Subscribe(10000)
	defer cancel()
	_, err := progressLeak.Schedule(d, 0).Value()
	require.NoError(t, err)
	_, err = progressSteps.Schedule(d, stepsArg{N: 1, Pause: 300 * time.Millisecond}).Value()
	require.NoError(t, err)
	got := collect(t, d, events, snap)

	var pids []int
	for _, e := range got {
		if e.Kind == dispatcher.TaskStarted {
			pids = append(pids, e.Pid)
		}
	}
	require.Len(t, pids, 2, "TaskStarted events")
	require.Equal(t, pids[0], pids[1], "the pids of the two calls; want one child for both")
	require.Empty(t, progressEvents(got, 1), "progress events of the call that answered at once")
	ps := progressEvents(got, 2)
	require.NotEmpty(t, ps, "progress events of the second call")
	for _, e := range ps {
		require.Equal(t, int64(1), e.Progress.Done, "a progress event of the second call: %+v; want only its own report, 1 of 1", e.Progress)
	}
}

// progressHoldArg is the argument of progressHold.
type progressHoldArg struct {
	Gate        holdArg
	Done, Total int64
}

// progressHold reports Done of Total, then waits at the gate.
var progressHold = task.Define("dispatcher_test.progress-hold", func(ctx context.Context, a progressHoldArg) (int, error) {
	if err := task.Progress(ctx, a.Done, a.Total); err != nil {
		return 0, err
	}
	return 0, passGate(ctx, a.Gate)
})

// TestStatsAddUpRunningProgress checks that Stats adds up the progress of
// the calls that run, and drops a call's once it ends.
func TestStatsAddUpRunningProgress(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(2))
	events, cancel := d.Subscribe(1000)
	defer cancel()
	progressHold.Schedule(d, progressHoldArg{Gate: g.arg(), Done: 3, Total: 10})
	progressHold.Schedule(d, progressHoldArg{Gate: g.arg(), Done: 5, Total: 20})
	for seen := 0; seen < 2; {
		if e := <-events; e.Kind == dispatcher.TaskProgress {
			seen++
		}
	}
	s := d.Stats()
	require.Equal(t, int64(8), s.ProgressDone, "ProgressDone of two running calls at 3 of 10 and 5 of 20")
	require.Equal(t, int64(30), s.ProgressTotal, "ProgressTotal of two running calls at 3 of 10 and 5 of 20")
	g.open(t, 2)
	joinAll(t, d)
	s = d.Stats()
	require.Zero(t, s.ProgressDone, "ProgressDone once the calls ended")
	require.Zero(t, s.ProgressTotal, "ProgressTotal once the calls ended")
}
