package dispatcher

import (
	"errors"
	"fmt"
)

// childState is where a child is in its life. It changes only in
// Dispatcher.moveChild, which keeps what depends on it: the list of ready
// children and the sets of children, workers and catchers.
type childState uint8

const (
	childStarting childState = iota // its process is being started
	childReady                      // it may take work: it is in d.ready
	childBusy                       // it has work in flight and takes no more until an answer
	childRetiring                   // it takes no more work and exits on its own once its work is done
	childStopping                   // a stop frame asked it to finish (a worker at Shutdown)
	childEnding                     // the dispatcher is ending it: its termination sequence, or SIGKILL
	childGone                       // it exited
	numChildStates
)

var childStateNames = [numChildStates]string{"starting", "ready", "busy", "retiring", "stopping", "ending", "gone"}

func (s childState) String() string {
	if s >= numChildStates {
		return fmt.Sprintf("childState(%d)", uint8(s))
	}
	return childStateNames[s]
}

// takesNoMore reports whether a child in state s is given no more work,
// ever.
func (s childState) takesNoMore() bool { return s >= childRetiring }

// childMoves says which moves are allowed: childMoves[from] has bit to.
var childMoves = [numChildStates]uint16{
	childStarting: 1<<childReady | 1<<childBusy | 1<<childRetiring,
	childReady:    1<<childBusy | 1<<childRetiring | 1<<childStopping | 1<<childEnding | 1<<childGone,
	childBusy:     1<<childReady | 1<<childRetiring | 1<<childStopping | 1<<childEnding | 1<<childGone,
	childRetiring: 1<<childStopping | 1<<childEnding | 1<<childGone,
	childStopping: 1<<childEnding | 1<<childGone,
	childEnding:   1 << childGone,
}

// moveChild moves c to state to, and keeps what depends on its state: a
// ready child is in d.ready, a child that has left starting and is not
// gone is in d.children, and a gone child is in no set. A move that is
// not allowed is a bug in the dispatcher (see badMove).
func (d *Dispatcher) moveChild(c *child, to childState) {
	from := c.state
	if from == to {
		return
	}
	if childMoves[from]&(1<<to) == 0 {
		d.badMove(fmt.Sprintf("child %d moved from %v to %v", c.pid(), from, to))
	}
	c.state = to
	switch {
	case from == childReady:
		d.dropReady(c)
	case from == childStarting:
		d.children[c] = struct{}{}
	}
	switch to {
	case childReady:
		d.ready = append(d.ready, c)
	case childGone:
		delete(d.children, c)
		delete(d.workers, c)
		delete(d.catchers, c)
	}
}

// dropReady takes c off d.ready.
func (d *Dispatcher) dropReady(c *child) {
	for i, x := range d.ready {
		if x == c {
			copy(d.ready[i:], d.ready[i+1:])
			d.ready[len(d.ready)-1] = nil
			d.ready = d.ready[:len(d.ready)-1]
			return
		}
	}
}

// jobState is where a job is in its life. It changes only in
// Dispatcher.moveJob, which keeps the counters that depend on it.
type jobState uint8

const (
	jobNew       jobState = iota // made, not yet counted
	jobSubmitted                 // taken in by Submit: in the inbox, not yet the manager's
	jobQueued                    // in the queue (d.pending)
	jobWaiting                   // waiting out a retry delay
	jobRunning                   // handed to a child (j.child)
	jobStopping                  // running, and being stopped (j.cause)
	jobDone                      // resolved
	numJobStates
)

var jobStateNames = [numJobStates]string{"new", "submitted", "queued", "waiting", "running", "stopping", "done"}

func (s jobState) String() string {
	if s >= numJobStates {
		return fmt.Sprintf("jobState(%d)", uint8(s))
	}
	return jobStateNames[s]
}

// jobMoves says which moves are allowed: jobMoves[from] has bit to.
var jobMoves = [numJobStates]uint8{
	jobNew:       1 << jobSubmitted,
	jobSubmitted: 1<<jobQueued | 1<<jobDone,
	jobQueued:    1<<jobRunning | 1<<jobDone,
	jobWaiting:   1<<jobQueued | 1<<jobDone,
	jobRunning:   1<<jobQueued | 1<<jobWaiting | 1<<jobStopping | 1<<jobDone,
	jobStopping:  1 << jobDone,
}

// Which states count where: Stats' Queued and Running, and the manager's
// own counts of the jobs it holds (unresolved, and of them the jobs that
// need a child of their own, the server-mode workers, and the jobs
// waiting out a retry delay).
const (
	countsQueued  = 1<<jobSubmitted | 1<<jobQueued | 1<<jobWaiting
	countsRunning = 1<<jobRunning | 1<<jobStopping
	countsHeld    = 1<<jobQueued | 1<<jobWaiting | 1<<jobRunning | 1<<jobStopping
	countsWaiting = 1 << jobWaiting
)

// moveJob moves j to state to, and keeps every counter that depends on
// its state: Stats' Queued and Running for its task, and d's unresolved,
// ownJobs, workerJobs and waiting. A job that leaves running forgets its
// child and its progress. A move that is not allowed is a bug in the
// dispatcher (see badMove). The move from jobNew, on the caller's
// goroutine in Submit, touches only j and atomic counters.
func (d *Dispatcher) moveJob(j *job, to jobState) {
	from := j.state
	if jobMoves[from]&(1<<to) == 0 {
		d.badMove(fmt.Sprintf("job %d (%s) moved from %v to %v", j.seq, j.call.Task, from, to))
	}
	j.state = to
	f, t := uint8(1)<<from, uint8(1)<<to
	if c := j.obs.counters; c != nil {
		c.queued.Add(delta(f, t, countsQueued))
		c.running.Add(delta(f, t, countsRunning))
	}
	if n := delta(f, t, countsHeld); n != 0 {
		d.unresolved += int(n)
		if j.needsOwnChild() {
			d.ownJobs += int(n)
		}
		if j.worker {
			d.workerJobs += int(n)
		}
	}
	if n := delta(f, t, countsWaiting); n != 0 {
		d.waiting += int(n)
	}
	if f&countsRunning != 0 && t&countsRunning == 0 {
		j.child = nil
		j.setProgress(0, 0)
	}
}

// delta is what a move from the state with bit f to the one with bit t
// adds to a count of the states in set: 1, -1 or 0.
func delta(f, t, set uint8) int64 {
	var n int64
	if t&set != 0 {
		n++
	}
	if f&set != 0 {
		n--
	}
	return n
}

// strictStates makes a move that is not allowed panic; the package's
// tests set it. Otherwise the dispatcher logs it and goes on: the move
// is made and every counter follows it, so nothing drifts.
var strictStates = false

// badMove reports a move that is not allowed.
func (d *Dispatcher) badMove(what string) {
	if strictStates {
		panic("dispatcher: a move that is not allowed: " + what)
	}
	d.log.Error("dispatcher: internal error: a move that is not allowed", "move", what)
}

// audit checks the dispatcher's counters against the states of its jobs
// and children, and returns what disagrees. It is for the manager
// goroutine, and takes d.mu to read the inbox.
func (d *Dispatcher) audit() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	queued := map[string]int64{}
	running := map[string]int64{}
	held, own, workers, waiting := 0, 0, 0, 0
	hold := func(j *job, want uint8, where string) {
		if (1<<j.state)&want == 0 {
			bad("job %d (%s) is %v %s", j.seq, j.call.Task, j.state, where)
			return
		}
		if j.state == jobSubmitted {
			return
		}
		held++
		if j.needsOwnChild() {
			own++
		}
		if j.worker {
			workers++
		}
	}
	for _, j := range d.pending {
		hold(j, 1<<jobQueued, "in the queue")
		queued[j.call.Task]++
	}
	for _, t := range d.timers {
		if t.kind == timerRetry && t.j.state == jobWaiting {
			hold(t.j, 1<<jobWaiting, "waiting")
			queued[t.j.call.Task]++
			waiting++
		}
	}
	inReady := map[*child]bool{}
	for _, c := range d.ready {
		inReady[c] = true
		if c.state != childReady {
			bad("child %d is %v in the ready list", c.pid(), c.state)
		}
	}
	for c := range d.children {
		if (c.state == childReady) != inReady[c] {
			bad("child %d is %v, and in the ready list: %v", c.pid(), c.state, inReady[c])
		}
		for _, j := range c.inflight {
			if j.state == jobDone {
				continue // withdrawn and resolved, its skipped answer to come
			}
			hold(j, countsRunning, "in a child's pipeline")
			if j.child != c {
				bad("job %d (%s) in child %d's pipeline names another child", j.seq, j.call.Task, c.pid())
			}
			running[j.call.Task]++
		}
	}
	for c := range d.workers {
		if _, ok := d.children[c]; !ok || !c.worker {
			bad("child %d is among the workers, and is %v", c.pid(), c.state)
		}
	}
	for c := range d.catchers {
		if _, ok := d.children[c]; !ok {
			bad("child %d catches the termination signal, and is %v", c.pid(), c.state)
		}
	}
	if held != d.unresolved || own != d.ownJobs || workers != d.workerJobs || waiting != d.waiting {
		bad("counts unresolved %d, own %d, workers %d, waiting %d; the states say %d, %d, %d, %d",
			d.unresolved, d.ownJobs, d.workerJobs, d.waiting, held, own, workers, waiting)
	}
	// Stats' gauges, with the calls Submit took in and the manager has
	// not yet seen: under d.mu, Submit counts none meanwhile.
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.inbox {
		if j, ok := x.(*job); ok {
			hold(j, 1<<jobSubmitted, "in the inbox")
			queued[j.call.Task]++
		}
	}
	d.obs.tasks.Range(func(k, v any) bool {
		name, c := k.(string), v.(*taskCounters)
		if q, r := c.queued.Load(), c.running.Load(); q != queued[name] || r != running[name] {
			bad("task %s: Stats say %d queued, %d running; the states say %d, %d", name, q, r, queued[name], running[name])
		}
		return true
	})
	return errors.Join(errs...)
}
