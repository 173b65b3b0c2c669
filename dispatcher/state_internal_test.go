package dispatcher

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// bareDispatcher is a dispatcher's state without its goroutine, for tests
// that move jobs and children by hand.
func bareDispatcher() *Dispatcher {
	return &Dispatcher{
		log:      nopLogger{},
		depth:    1,
		children: make(map[*child]struct{}),
		workers:  make(map[*child]struct{}),
		catchers: make(map[*child]struct{}),
	}
}

// TestChildMovesKeepTheReadyListAndSets walks a child through its life
// and checks, at each step, the ready list and the sets of children,
// workers and catchers; then every move that is not allowed panics.
func TestChildMovesKeepTheReadyListAndSets(t *testing.T) {
	d := bareDispatcher()
	c := &child{d: d, worker: true}
	other := &child{d: d}
	d.moveChild(other, childReady)
	check := func(state childState, ready, alive bool) {
		t.Helper()
		require.Equal(t, state, c.state, "the child's state")
		require.Equal(t, ready, contains(d.ready, c), "in the ready list when %v", state)
		_, ok := d.children[c]
		require.Equal(t, alive, ok, "among the children when %v", state)
		require.True(t, contains(d.ready, other), "the other child stays ready")
	}
	check(childStarting, false, false)
	d.moveChild(c, childReady)
	check(childReady, true, true)
	d.moveChild(c, childBusy)
	check(childBusy, false, true)
	d.moveChild(c, childReady)
	check(childReady, true, true)
	d.moveChild(c, childRetiring)
	check(childRetiring, false, true)
	d.workers[c] = struct{}{}
	d.catchers[c] = struct{}{}
	d.moveChild(c, childStopping)
	check(childStopping, false, true)
	d.moveChild(c, childEnding)
	check(childEnding, false, true)
	d.moveChild(c, childGone)
	check(childGone, false, false)
	require.NotContains(t, d.workers, c, "a gone child among the workers")
	require.NotContains(t, d.catchers, c, "a gone child among the catchers")
	require.NoError(t, d.audit())

	for from := range numChildStates {
		for to := range numChildStates {
			if from == to || childMoves[from]&(1<<to) != 0 {
				continue
			}
			x := &child{d: d, state: from}
			require.Panics(t, func() { d.moveChild(x, to) }, "a move from %v to %v; want a panic", from, to)
		}
	}
	for _, bad := range [][2]childState{
		{childGone, childReady}, {childRetiring, childReady}, {childEnding, childStopping}, {childStarting, childGone},
	} {
		require.Zero(t, childMoves[bad[0]]&(1<<bad[1]), "%v to %v is allowed; want it refused", bad[0], bad[1])
	}
}

// TestJobMovesKeepTheCounters walks jobs through their lives and checks,
// at each step, Stats' Queued and Running and the manager's own counts;
// then every move that is not allowed panics.
func TestJobMovesKeepTheCounters(t *testing.T) {
	d := bareDispatcher()
	c := &child{d: d}
	d.moveChild(c, childBusy)
	type counts struct{ queued, running, held, own, workers, waiting int }
	check := func(j *job, state jobState, want counts) {
		t.Helper()
		require.Equal(t, state, j.state, "the job's state")
		s := d.Stats()
		got := counts{s.Queued, s.Running, d.unresolved, d.ownJobs, d.workerJobs, d.waiting}
		require.Equal(t, want, got, "counts (queued, running, held, own, workers, waiting) when %v", state)
	}
	give := func(j *job) {
		c.inflight = append(c.inflight, j)
		j.child = c
		d.began(j, c)
	}
	d.seq++
	j := newJob(&task.Call{Task: "walk"}, d.seq)
	check(j, jobNew, counts{})
	d.submitted(j)
	check(j, jobSubmitted, counts{queued: 1})
	d.admitted(j)
	d.pending = append(d.pending, j)
	check(j, jobQueued, counts{queued: 1, held: 1})
	d.pending = d.pending[1:]
	give(j)
	check(j, jobRunning, counts{running: 1, held: 1})
	require.NoError(t, d.audit())
	c.inflight = nil
	d.requeued(j)
	require.Nil(t, j.child, "a requeued job's child")
	check(j, jobQueued, counts{queued: 1, held: 1})
	give(j)
	c.inflight = nil
	d.retried(j, &result.ChildDeath{Task: "walk"}, 0)
	check(j, jobWaiting, counts{queued: 1, held: 1, waiting: 1})
	d.retry(j)
	check(j, jobQueued, counts{queued: 1, held: 1})
	d.pending = d.pending[1:]
	give(j)
	d.moveJob(j, jobStopping)
	check(j, jobStopping, counts{running: 1, held: 1})
	c.inflight = nil
	d.ended(j, fmt.Errorf("stopped"))
	check(j, jobDone, counts{})
	require.NoError(t, d.audit())

	// A call with limits and a server-mode worker have counts of their own.
	d.seq++
	own := newJob(&task.Call{Task: "walk", Process: &task.Process{}}, d.seq)
	d.submitted(own)
	d.admitted(own)
	check(own, jobQueued, counts{queued: 1, held: 1, own: 1})
	d.seq++
	w := newJob(&task.Call{Task: "walk"}, d.seq)
	d.submitted(w)
	w.worker = true
	d.admitted(w)
	check(w, jobQueued, counts{queued: 2, held: 2, own: 1, workers: 1})
	d.ended(own, ErrClosed)
	d.ended(w, ErrClosed)
	check(w, jobDone, counts{})
	require.NoError(t, d.audit())

	// The audit sees a count that drifted from the states.
	d.unresolved++
	require.ErrorContains(t, d.audit(), "counts unresolved 1", "the audit of an unresolved count one too high")
	d.unresolved--
	w.obs.counters.running.Add(1)
	require.ErrorContains(t, d.audit(), "task walk: Stats say 0 queued, 1 running", "the audit of a Running one too high")
	w.obs.counters.running.Add(-1)
	d.moveChild(c, childReady)
	c.state = childBusy // behind moveChild's back
	require.ErrorContains(t, d.audit(), "is busy in the ready list", "the audit of a child on the ready list that is not ready")

	for from := range numJobStates {
		for to := range numJobStates {
			if jobMoves[from]&(1<<to) != 0 {
				continue
			}
			x := &job{call: &task.Call{Task: "walk"}, state: from}
			require.Panics(t, func() { d.moveJob(x, to) }, "a move from %v to %v; want a panic", from, to)
		}
	}
	for _, bad := range [][2]jobState{
		{jobDone, jobQueued}, {jobQueued, jobStopping}, {jobNew, jobRunning}, {jobStopping, jobQueued}, {jobWaiting, jobRunning},
	} {
		require.Zero(t, jobMoves[bad[0]]&(1<<bad[1]), "%v to %v is allowed; want it refused", bad[0], bad[1])
	}
}

// TestBadMoveOutsideTestsIsLoggedAndCounted checks what a move that is
// not allowed does where it does not panic: the log says so, and the
// counters follow the move.
func TestBadMoveOutsideTestsIsLoggedAndCounted(t *testing.T) {
	strictStates = false
	defer func() { strictStates = true }()
	d := bareDispatcher()
	log := &errorLog{}
	d.log = log
	j := newJob(&task.Call{Task: "walk"}, 1)
	d.submitted(j)
	d.admitted(j)
	d.moveJob(j, jobStopping) // queued to stopping: not allowed
	require.Len(t, log.msgs, 1, "errors logged for a move that is not allowed")
	require.Equal(t, 1, d.Stats().Running, "Running after the move")
	require.Zero(t, d.Stats().Queued, "Queued after the move")
}

type errorLog struct {
	nopLogger
	msgs []string
}

func (l *errorLog) Error(msg string, args ...any) { l.msgs = append(l.msgs, fmt.Sprint(msg, args)) }

func contains(cs []*child, c *child) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}
