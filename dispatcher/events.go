package dispatcher

import (
	"slices"
	"sync"
	"time"

	"github.com/procrastinate-go/procrastinate/result"
)

// EventKind says what an Event reports.
type EventKind int

// The kinds of event.
const (
	TaskQueued      EventKind = iota + 1 // a call was queued (Task, Call, Attempt)
	TaskStarted                          // a call was handed to a child (Pid), after Wait in the queue
	TaskRetried                          // a call's child died (Err, the *result.ChildDeath); it runs again after Delay, as Attempt
	TaskDone                             // a call ended with Outcome (Err: its error), having run for RunTime
	ChildStarted                         // a child process started (Pid; Task: the call it was started for, if any)
	ChildExited                          // a child ended (Exit: why; for a crash or a kill, Cause: the line that says what went wrong, Err: the manager's reason); RunTime: its life
	SpawnFailed                          // a child could not be started (Err); Task and Call: the call it was for, if any
	WorkerRestarted                      // a server-mode worker (Task) started again after one ended with Err (nil: it returned); Restarts counts all restarts
	TaskProgress                         // a running call reported Progress (task.Progress)
)

var eventNames = [...]string{"", "task-queued", "task-started", "task-retried", "task-done", "child-started", "child-exited", "spawn-failed", "worker-restarted", "task-progress"}

func (k EventKind) String() string {
	if k <= 0 || int(k) >= len(eventNames) {
		return "unknown"
	}
	return eventNames[k]
}

// Event is something that happened in a dispatcher, as Subscribe
// delivers it. Which fields are set depends on its Kind.
type Event struct {
	Kind EventKind
	Time time.Time // when it happened
	// Dropped counts the events that this subscriber lost, because its
	// channel was full, since the one it got before this one.
	Dropped int64

	Task    string // the task's name
	Call    uint64 // the call's number in this dispatcher, from 1
	Attempt int    // the try: 1 for the first, 2 for the first retry, ...
	Pid     int    // the child's pid

	Wait     time.Duration   // TaskStarted: how long the call was queued
	RunTime  time.Duration   // TaskDone: how long the call ran (0 if it never started); ChildExited: how long the child lived
	Delay    time.Duration   // TaskRetried: the pause before the next try
	Outcome  Outcome         // TaskDone
	Exit     ExitReason      // ChildExited
	Cause    string          // ChildExited: what the child's crash report, or its exit, says went wrong
	Err      error           // TaskDone, TaskRetried, SpawnFailed, WorkerRestarted, ChildExited: see the kinds
	Restarts int64           // WorkerRestarted
	Progress result.Progress // TaskProgress
	Usage    result.Usage    // TaskDone: what the call cost its child, when its child said or its exit showed
}

// subscriber is one Subscribe's channel.
type subscriber struct {
	mu      sync.Mutex
	ch      chan Event
	dropped int64 // lost since the last event it got
	closed  bool
}

// send delivers e if it fits, and never waits for the reader. It reports
// whether e was dropped.
func (s *subscriber) send(e Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	e.Dropped = s.dropped
	select {
	case s.ch <- e:
		s.dropped = 0
		return false
	default:
		s.dropped++
		return true
	}
}

func (s *subscriber) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// Subscribe returns a channel of the dispatcher's events, with room for n
// of them (n below 1 is taken as 1), and a function that ends the
// subscription. The dispatcher never waits for the reader: an event that
// finds the channel full is dropped and counted, and the next event that
// fits says how many were lost (Event.Dropped; Stats.EventsDropped counts
// them all). The channel is closed when cancel is called, or when the
// dispatcher has ended and every future is resolved; cancel may be
// called any number of times, from any goroutine.
//
// Events come in the order they happened, from the dispatcher's own
// goroutine; keep up with them (a few per call, and one or two per child
// start) or expect drops.
func (d *Dispatcher) Subscribe(n int) (events <-chan Event, cancel func()) {
	s := &subscriber{ch: make(chan Event, max(n, 1))}
	o := &d.obs
	o.subMu.Lock()
	defer o.subMu.Unlock()
	if o.ended {
		s.close()
		return s.ch, func() {}
	}
	var list []*subscriber
	if p := o.subs.Load(); p != nil {
		list = slices.Clone(*p)
	}
	list = append(list, s)
	o.subs.Store(&list)
	return s.ch, func() {
		o.subMu.Lock()
		if p := o.subs.Load(); p != nil {
			kept := slices.DeleteFunc(slices.Clone(*p), func(x *subscriber) bool { return x == s })
			o.subs.Store(&kept)
		}
		o.subMu.Unlock()
		s.close()
	}
}

// listening reports whether anyone subscribed: events are made only then.
func (o *observer) listening() bool {
	p := o.subs.Load()
	return p != nil && len(*p) > 0
}

// emit delivers e to every subscriber; it runs on the manager goroutine
// and never waits.
func (d *Dispatcher) emit(e Event) {
	p := d.obs.subs.Load()
	if p == nil {
		return
	}
	e.Time = time.Now()
	for _, s := range *p {
		if s.send(e) {
			d.obs.eventsDropped.Add(1)
		}
	}
}

// endEvents closes every subscriber's channel: the dispatcher has ended.
func (o *observer) endEvents() {
	o.subMu.Lock()
	o.ended = true
	p := o.subs.Swap(nil)
	o.subMu.Unlock()
	if p == nil {
		return
	}
	for _, s := range *p {
		s.close()
	}
}
