package dispatcher

import (
	"container/heap"
	"context"
	"time"

	"github.com/procrastinate-go/procrastinate/procman"
)

// timer is something the manager goroutine must do at a time: stop a job
// whose deadline passed, requeue a job whose retry delay is over, check a
// job's heartbeats, or send SIGKILL to a child whose grace period is over.
// A job's timers leave the heap when it resolves, and a child's when it
// exits, so that nothing of a finished call (its argument, its answer)
// stays reachable until a deadline that may be hours away. Each timer
// still checks, when it fires, that it applies.
type timer struct {
	at    time.Time
	kind  timerKind
	j     *job
	c     *child
	index int // its place in the heap; -1 once out of it
}

type timerKind int

const (
	timerDeadline timerKind = iota // j's deadline
	timerRetry                     // j may run again
	timerActivity                  // time to check c's heartbeats for j
	timerCut                       // the grace period of j, withdrawn while c ran it, is over
	timerKill                      // c's grace period is over

	jobTimers = timerKill // the kinds a job has, one timer of each at most: those before timerKill
)

// timerHeap is a min-heap of timers by time, each knowing its place in it,
// so that one can be taken out.
type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, k int) bool { return h[i].at.Before(h[k].at) }
func (h timerHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].index, h[k].index = i, k
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}

// add puts t in the heap. A job's timer takes the job's slot for its kind,
// and a kill timer the child's, where remove finds them.
func (h *timerHeap) add(t *timer) {
	heap.Push(h, t)
	switch {
	case t.kind == timerKill:
		h.remove(t.c.killTimer)
		t.c.killTimer = t
	case t.j != nil:
		h.remove(t.j.timers[t.kind])
		t.j.timers[t.kind] = t
	}
}

// remove takes t out of the heap, if it is there; t may be nil.
func (h *timerHeap) remove(t *timer) {
	if t != nil && t.index >= 0 && t.index < len(*h) && (*h)[t.index] == t {
		heap.Remove(h, t.index)
	}
}

// removeJob takes j's timers out of the heap.
func (h *timerHeap) removeJob(j *job) {
	for i, t := range j.timers {
		h.remove(t)
		j.timers[i] = nil
	}
}

// live reports whether a timer still applies: one that, when it fires,
// will do something.
func (h timerHeap) live() bool {
	for _, t := range h {
		switch t.kind {
		case timerDeadline, timerActivity, timerCut:
			if t.j.state != jobDone {
				return true
			}
		case timerRetry:
			if t.j.state == jobWaiting {
				return true
			}
		case timerKill:
			if t.c.p.State() == procman.StateRunning {
				return true
			}
		}
	}
	return false
}

// next returns the time of the earliest timer, or zero.
func (h timerHeap) next() time.Time {
	if len(h) == 0 {
		return time.Time{}
	}
	return h[0].at
}

// due pops the timers whose time has come.
func (h *timerHeap) due(now time.Time) []*timer {
	var out []*timer
	for len(*h) > 0 && !now.Before((*h)[0].at) {
		t := heap.Pop(h).(*timer)
		switch {
		case t.kind == timerKill && t.c.killTimer == t:
			t.c.killTimer = nil
		case t.kind != timerKill && t.j.timers[t.kind] == t:
			t.j.timers[t.kind] = nil
		}
		out = append(out, t)
	}
	return out
}

// fire does what each due timer is for.
func (d *Dispatcher) fireTimers() {
	if len(d.timers) == 0 {
		return
	}
	for _, t := range d.timers.due(time.Now()) {
		switch t.kind {
		case timerDeadline:
			if t.j.state != jobDone {
				d.cancel(t.j, context.DeadlineExceeded)
			}
		case timerRetry:
			d.retry(t.j)
		case timerKill:
			t.c.kill()
		case timerActivity:
			t.c.checkActivity(t.j)
		case timerCut:
			t.c.cutOverdue(t.j)
		}
	}
}
