package dispatcher_test

import (
	"context"
	"strings"
	"sync"
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

// joinAll waits until every task scheduled on d so far has resolved.
func joinAll(t *testing.T, d *dispatcher.Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Join(ctx), "joining the dispatcher's tasks")
}

// TestStatsCountsOutcomes runs calls that end each way and checks that
// Stats counts them by task and outcome, with nothing left queued or
// running, and that every child started is counted as exited once the
// dispatcher has ended.
func TestStatsCountsOutcomes(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(2))
	for i := range 3 {
		square.Schedule(d, i)
	}
	fails.Schedule(d, "no")
	panics.Schedule(d, "oops")
	badExit.Schedule(d, exitArg{Code: 3})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	square.Schedule(d, 9, task.WithContext(ctx))
	joinAll(t, d)

	s := d.Stats()
	sq := s.Tasks[square.Name()]
	require.Equal(t, int64(4), sq.Scheduled, "square's Scheduled")
	require.Equal(t, int64(3), sq.Completed[dispatcher.OutcomeSucceeded], "square's succeeded")
	require.Equal(t, int64(1), sq.Completed[dispatcher.OutcomeCancelled], "square's cancelled (its context ended before it was queued)")
	require.Equal(t, int64(3), sq.RunTime.Count, "square's run times: the calls that started")
	require.Equal(t, int64(1), s.Tasks[fails.Name()].Completed[dispatcher.OutcomeFailed], "fails' failed")
	require.Equal(t, int64(1), s.Tasks[panics.Name()].Completed[dispatcher.OutcomeFailed], "panics' failed")
	require.Equal(t, int64(1), s.Tasks[badExit.Name()].Completed[dispatcher.OutcomeDied], "bad-exit's died")
	require.Equal(t, int64(7), s.Scheduled, "Scheduled over all tasks")
	require.Equal(t, int64(7), s.Done(), "Done over all tasks")
	require.Zero(t, s.Queued, "Queued after Join")
	require.Zero(t, s.Running, "Running after Join")
	require.Equal(t, int64(6), s.QueueWait.Count, "queue waits: one for each call that started")
	require.Len(t, s.RunTime.Counts, len(s.RunTime.Bounds), "a bucket count for each bound")
	require.Equal(t, s.RunTime.Count, s.RunTime.Counts[len(s.RunTime.Counts)-1],
		"the last cumulative count; want the total: no test task runs over the last bound, an hour")
	require.Positive(t, s.ChildrenStarted, "ChildrenStarted")
	require.GreaterOrEqual(t, s.ChildrenExited[dispatcher.ExitCrashed], int64(1), "crashed children: bad-exit's")

	shutdown(t, d, snap)
	s = d.Stats()
	var exited int64
	for _, n := range s.ChildrenExited {
		exited += n
	}
	require.Equal(t, s.ChildrenStarted, exited, "children exited after Shutdown; want every child started")
	require.Zero(t, s.Children, "children alive after Shutdown")

	r := square.Schedule(d, 1)
	require.ErrorIs(t, r.Err(), dispatcher.ErrClosed)
	require.Equal(t, int64(1), d.Stats().Tasks[square.Name()].Completed[dispatcher.OutcomeClosed], "closed: a call scheduled after Shutdown")
}

// TestStatsWhileRunning checks the gauges while calls run and wait, and
// that Stats answers while the manager goroutine is held up.
func TestStatsWhileRunning(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	block := &blockingStrategy{Strategy: strategy.Throttled(2), held: make(chan struct{}), release: make(chan struct{})}
	d := start(t, block)
	rs := make([]*result.Result[int], 3)
	for i := range rs {
		rs[i] = hold.Schedule(d, g.arg())
	}
	g.waitStarted(t, 2)
	s := d.Stats()
	require.Equal(t, 2, s.Running, "Running with two calls at the gate")
	require.Equal(t, 1, s.Queued, "Queued with two of three calls at the gate, at most two children")
	require.Equal(t, 2, s.Children, "Children")

	// The next Step holds the manager goroutine until release; a call
	// scheduled meanwhile is counted, and Stats does not wait for it.
	block.hold()
	r := square.Schedule(d, 3)
	<-block.held
	s = d.Stats()
	require.Equal(t, int64(4), s.Scheduled, "Scheduled while the manager goroutine is held up")
	require.Equal(t, 2, s.Queued, "Queued while the manager goroutine is held up")
	close(block.release)

	g.open(t, 3)
	joinAll(t, d)
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 9, v)
	s = d.Stats()
	require.Zero(t, s.Running, "Running after Join")
	require.Zero(t, s.Queued, "Queued after Join")
	require.Equal(t, int64(4), s.Completed[dispatcher.OutcomeSucceeded], "succeeded")
}

// blockingStrategy is a strategy whose Step, once hold was called, says
// so on held and waits for release.
type blockingStrategy struct {
	strategy.Strategy
	mu      sync.Mutex
	holding bool
	held    chan struct{}
	release chan struct{}
}

func (b *blockingStrategy) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

func (b *blockingStrategy) Step(p strategy.Pool) {
	b.mu.Lock()
	h := b.holding
	b.holding = false
	b.mu.Unlock()
	if h {
		close(b.held)
		<-b.release
	}
	b.Strategy.Step(p)
}

// TestEvents follows one call that succeeds and one whose child dies and
// is retried, through the events of a subscription.
func TestEvents(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1))
	events, cancel := d.Subscribe(1000)
	defer cancel()
	v, err := square.Schedule(d, 7).Value()
	require.NoError(t, err)
	require.Equal(t, 49, v)
	_, err = badExit.Schedule(d, exitArg{Code: 3}, task.WithRetries(1, 0)).Value()
	var re *result.RetryError
	require.ErrorAs(t, err, &re)
	shutdown(t, d, snap)

	var got []dispatcher.Event
	for e := range events { // closed once the dispatcher has ended
		require.Zero(t, e.Dropped, "Dropped in %v: nothing should be lost from a channel of 1000", e.Kind)
		require.False(t, e.Time.IsZero(), "Time of %v", e.Kind)
		got = append(got, e)
	}
	byCall := func(call uint64) []dispatcher.EventKind {
		var ks []dispatcher.EventKind
		for _, e := range got {
			if e.Call == call && e.Kind != dispatcher.SpawnFailed {
				ks = append(ks, e.Kind)
			}
		}
		return ks
	}
	require.Equal(t, []dispatcher.EventKind{dispatcher.TaskQueued, dispatcher.TaskStarted, dispatcher.TaskDone}, byCall(1), "the events of the call that succeeded")
	require.Equal(t, []dispatcher.EventKind{dispatcher.TaskQueued, dispatcher.TaskStarted, dispatcher.TaskRetried, dispatcher.TaskStarted, dispatcher.TaskDone}, byCall(2), "the events of the call retried once")

	var starts, exits, crashed int
	for _, e := range got {
		switch e.Kind {
		case dispatcher.TaskStarted:
			require.Positive(t, e.Pid, "TaskStarted's Pid")
			require.GreaterOrEqual(t, e.Wait, time.Duration(0), "TaskStarted's Wait")
		case dispatcher.TaskDone:
			if e.Call == 1 {
				require.Equal(t, dispatcher.OutcomeSucceeded, e.Outcome, "TaskDone's outcome for square")
				require.NoError(t, e.Err, "TaskDone's Err for square")
				require.Positive(t, e.RunTime, "TaskDone's RunTime for square")
			} else {
				require.Equal(t, dispatcher.OutcomeDied, e.Outcome, "TaskDone's outcome for bad-exit")
				require.Equal(t, 2, e.Attempt, "TaskDone's Attempt for bad-exit, retried once")
				require.ErrorAs(t, e.Err, &re)
			}
		case dispatcher.TaskRetried:
			var death *result.ChildDeath
			require.ErrorAs(t, e.Err, &death)
			require.Equal(t, 3, death.ExitCode, "the retried call's death")
			require.Equal(t, 2, e.Attempt, "TaskRetried's Attempt: the try to come")
		case dispatcher.ChildStarted:
			starts++
		case dispatcher.ChildExited:
			exits++
			if e.Exit == dispatcher.ExitCrashed {
				crashed++
				require.Contains(t, e.Cause, "exited with code 3", "a crashed child's Cause says how it ended")
			}
		}
	}
	require.Positive(t, starts, "ChildStarted events")
	require.Equal(t, starts, exits, "ChildExited events; want one for each ChildStarted")
	require.Equal(t, 2, crashed, "crashed children: both tries of bad-exit")
}

// TestEventsDropped checks that a subscriber that does not read loses
// events without holding up the dispatcher, and that the next event it
// gets says how many it lost.
func TestEventsDropped(t *testing.T) {
	checkLeaks(t)
	// Children are reused: none ends between the two batches, so no event
	// comes but those of the calls.
	d := start(t, strategy.Throttled(1, strategy.Reuse(100)))
	events, cancel := d.Subscribe(1)
	defer cancel()
	for i := range 5 {
		square.Schedule(d, i)
	}
	joinAll(t, d)
	lost := d.Stats().EventsDropped
	require.Positive(t, lost, "EventsDropped after 5 calls through a channel of 1")
	first := <-events
	require.Zero(t, first.Dropped, "the first event's Dropped: it fit")

	_, err := square.Schedule(d, 9).Value()
	require.NoError(t, err)
	next := <-events
	require.Equal(t, lost, next.Dropped, "the next event's Dropped; want what Stats counted as lost before it")
	require.Equal(t, dispatcher.TaskQueued, next.Kind, "the next event")
}

// TestServerRestartsReported runs a server whose worker exits at once and
// checks that each restart is an event with its cause and count, is
// counted in Stats, and is logged at Warn.
func TestServerRestartsReported(t *testing.T) {
	checkLeaks(t)
	var log syncBuffer
	dir := t.TempDir()
	d := start(t, strategy.SpawnN(1, serverWorker, serverArg{Dir: dir, Mode: workerExit},
		strategy.MaxRestarts(2, time.Hour), strategy.Backoff(0, 0)),
		dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})))
	events, cancel := d.Subscribe(1000)
	defer cancel()
	<-d.Done() // a server that gives up ends its dispatcher
	var rle *strategy.RestartLimitError
	require.ErrorAs(t, d.Err(), &rle)
	require.NoError(t, d.Shutdown(context.Background()))

	var restarts []dispatcher.Event
	for e := range events {
		if e.Kind == dispatcher.WorkerRestarted {
			restarts = append(restarts, e)
		}
	}
	require.Len(t, restarts, 2, "WorkerRestarted events; want one for each of MaxRestarts(2)")
	for i, e := range restarts {
		require.Equal(t, int64(i+1), e.Restarts, "the restart count of restart %d", i+1)
		require.Equal(t, serverWorker.Name(), e.Task, "the restarted worker")
		var death *result.ChildDeath
		require.ErrorAs(t, e.Err, &death, "restart %d's cause", i+1)
		require.Equal(t, workerExitCode, death.ExitCode, "the exit code in restart %d's cause", i+1)
	}
	require.Equal(t, int64(2), d.Stats().ServerRestarts, "Stats().ServerRestarts")
	warns := strings.Count(log.String(), "restarting a server worker")
	require.Equal(t, 2, warns, "Warn lines about restarts in the log:\n%s", log.String())
	require.Contains(t, log.String(), "exited with code 3", "the cause in the log")
}
