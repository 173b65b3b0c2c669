package dispatcher

import (
	"container/heap"
	"context"
	"time"

	"github.com/procrastinate-go/procrastinate/procman"
)

// timer is something the manager goroutine must do at a time: stop a job
// whose deadline passed, requeue a job whose retry delay is over, or send
// SIGKILL to a child whose grace period is over. Timers are not removed
// when what they are for goes away; each checks, when it fires, that it
// still applies.
type timer struct {
	at   time.Time
	kind timerKind
	j    *job
	c    *child
}

type timerKind int

const (
	timerDeadline timerKind = iota // j's deadline
	timerRetry                     // j may run again
	timerKill                      // c's grace period is over
	timerActivity                  // time to check c's heartbeats for j
)

// timerHeap is a min-heap of timers by time.
type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, k int) bool { return h[i].at.Before(h[k].at) }
func (h timerHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

func (h *timerHeap) add(t timer) { heap.Push(h, t) }

// live reports whether a timer still applies: one that, when it fires,
// will do something (timers are not removed when what they are for goes
// away).
func (h timerHeap) live() bool {
	for _, t := range h {
		switch t.kind {
		case timerDeadline, timerActivity:
			if !t.j.done {
				return true
			}
		case timerRetry:
			if t.j.waiting {
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
func (h *timerHeap) due(now time.Time) []timer {
	var out []timer
	for len(*h) > 0 && !now.Before((*h)[0].at) {
		out = append(out, heap.Pop(h).(timer))
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
			if !t.j.done {
				d.cancel(t.j, context.DeadlineExceeded)
			}
		case timerRetry:
			d.retry(t.j)
		case timerKill:
			t.c.kill()
		case timerActivity:
			t.c.checkActivity(t.j)
		}
	}
}
