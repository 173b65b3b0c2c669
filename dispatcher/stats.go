package dispatcher

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// Outcome says how a call ended. Its String is the label metrics use.
type Outcome int

// The outcomes of a call, one for each way its future resolves.
const (
	OutcomeSucceeded Outcome = iota // the task answered with a value
	OutcomeFailed                   // the task returned an error or panicked (*result.TaskError)
	OutcomeDied                     // its child died before answering, on every try (*result.ChildDeath, *result.RetryError)
	OutcomeCancelled                // its context or timeout ended it (*result.CancelError)
	OutcomeClosed                   // the dispatcher ended before it started (ErrClosed)
	OutcomeRefused                  // it could not start: no child could be started for it, or the call itself was refused
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"succeeded", "failed", "died", "cancelled", "closed", "refused"}

func (o Outcome) String() string {
	if o < 0 || o >= numOutcomes {
		return "unknown"
	}
	return outcomeNames[o]
}

// outcomeOf classifies the error a call's future resolved with.
func outcomeOf(err error) Outcome {
	var (
		te *result.TaskError
		ce *result.CancelError
		se *procman.StartError
		cd *result.ChildDeath
		re *result.RetryError
	)
	switch {
	case err == nil:
		return OutcomeSucceeded
	case errors.As(err, &te):
		return OutcomeFailed
	case errors.As(err, &ce):
		return OutcomeCancelled
	case errors.As(err, &se):
		return OutcomeRefused
	case errors.As(err, &cd), errors.As(err, &re):
		return OutcomeDied
	case errors.Is(err, ErrClosed):
		return OutcomeClosed
	}
	return OutcomeRefused
}

// ExitReason says why a child process ended. Its String is the label
// metrics use.
type ExitReason int

// The reasons a child ends.
const (
	ExitRetired    ExitReason = iota // it exited cleanly: it served its last call, or was retired while idle or at Shutdown
	ExitTooOld                       // it exited cleanly, having passed its age (strategy.Policy.MaxAge)
	ExitOverMemory                   // it exited cleanly after an answer, over its memory limit (strategy.Policy.MaxRSS)
	ExitKilled                       // the dispatcher ended it: Close, a cancelled call, an activity timeout, a protocol error
	ExitCrashed                      // it failed or was killed by a signal that the dispatcher did not send
	numExitReasons
)

var exitNames = [numExitReasons]string{"retired", "too_old", "over_memory", "killed", "crashed"}

func (r ExitReason) String() string {
	if r < 0 || r >= numExitReasons {
		return "unknown"
	}
	return exitNames[r]
}

// Stats is a snapshot of a dispatcher's work and children, from
// [Dispatcher.Stats]. Its embedded TaskStats counts every task together;
// Tasks counts each task by name. Counters (the int64 fields) only grow;
// Queued, Running and Children are the numbers at the moment of the
// snapshot. Each field is read on its own, so two fields may be a moment
// apart while work goes on; once the dispatcher is still (after Join,
// say), they agree.
type Stats struct {
	TaskStats
	// Tasks holds each task's numbers, by the task's name: every task
	// that was ever scheduled on the dispatcher, or run as a worker.
	Tasks map[string]TaskStats

	Children        int   // child processes alive
	ChildrenStarted int64 // child processes started
	// ChildrenExited counts the children that ended, by why; index it
	// with an ExitReason.
	ChildrenExited [numExitReasons]int64
	// SpawnFailures counts the children that could not be started:
	// refusals that pass (the task waits and is tried again) and those
	// that fail their task at once.
	SpawnFailures int64
	// ServerRestarts counts the server-mode workers started again after
	// one ended (strategy.SpawnN).
	ServerRestarts int64
	// StderrDropped counts the bytes of the children's stderr (each line
	// with its prefix) dropped because the writer (WithStderr, or the
	// parent's stderr) did not take them in time, or failed to write
	// them.
	StderrDropped int64
	// EventsDropped counts the events that did not fit a subscriber's
	// channel (see Subscribe), over all subscribers.
	EventsDropped int64
}

// TaskStats counts the calls of one task, or of all tasks together.
type TaskStats struct {
	// Scheduled counts the calls taken in: scheduled, or started as
	// server-mode workers. Each is queued, running, or done (counted in
	// Completed by its outcome).
	Scheduled int64
	// Queued is the number of calls waiting for a child, retries waiting
	// out their delay among them; Running the number handed to a child
	// and not answered yet.
	Queued, Running int
	// Completed counts the calls that ended, by outcome; index it with an
	// Outcome.
	Completed [numOutcomes]int64
	// Retries counts the retries (task.WithRetries) after a child died.
	Retries int64
	// UserCPU and SystemCPU add up the CPU time that the calls cost
	// their children (see result.Usage).
	UserCPU, SystemCPU time.Duration
	// ProgressDone and ProgressTotal add up the latest progress
	// (task.Progress) of the calls running now that reported any: with
	// Done and Running, what a progress bar needs about the work in
	// flight.
	ProgressDone, ProgressTotal int64
	// QueueWait is how long calls waited from Schedule to their start (a
	// retry from its requeueing); RunTime how long they ran, from their
	// start to their answer or their child's death, for the calls that
	// started.
	QueueWait, RunTime Histogram
}

// Done returns the number of calls that ended, whatever their outcome.
func (t TaskStats) Done() int64 {
	var n int64
	for _, c := range t.Completed {
		n += c
	}
	return n
}

// Histogram counts durations in buckets, as Prometheus histograms do.
// Bounds are the buckets' upper bounds, the same for every Histogram of
// a dispatcher; Counts[i] is the number of durations at or below
// Bounds[i] (cumulative), Count the number of all of them, Sum their
// total.
type Histogram struct {
	Bounds []time.Duration
	Counts []int64
	Count  int64
	Sum    time.Duration
}

// histBounds are the upper bounds of the histograms' buckets.
var histBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
	5 * time.Minute, 15 * time.Minute, time.Hour,
}

// histo is a histogram that the manager goroutine writes and any
// goroutine reads.
type histo struct {
	counts [len(histBounds) + 1]atomic.Int64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64                      // nanoseconds
}

func (h *histo) observe(d time.Duration) {
	i := 0
	for i < len(histBounds) && d > histBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// addTo adds h's counts to out, a snapshot.
func (h *histo) addTo(out *Histogram) {
	if out.Bounds == nil {
		out.Bounds = append([]time.Duration(nil), histBounds[:]...)
		out.Counts = make([]int64, len(histBounds))
	}
	var cum int64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if i < len(histBounds) {
			out.Counts[i] += cum
		}
	}
	out.Count += cum
	out.Sum += time.Duration(h.sum.Load())
}

// taskCounters are one task's counters.
type taskCounters struct {
	scheduled, queued, running atomic.Int64
	completed                  [numOutcomes]atomic.Int64
	retries                    atomic.Int64
	user, system               atomic.Int64 // nanoseconds
	progDone, progTotal        atomic.Int64 // of the running calls
	wait, run                  histo
}

func (c *taskCounters) addTo(out *TaskStats) {
	out.Scheduled += c.scheduled.Load()
	out.Queued += int(c.queued.Load())
	out.Running += int(c.running.Load())
	for i := range c.completed {
		out.Completed[i] += c.completed[i].Load()
	}
	out.Retries += c.retries.Load()
	out.ProgressDone += c.progDone.Load()
	out.ProgressTotal += c.progTotal.Load()
	out.UserCPU += time.Duration(c.user.Load())
	out.SystemCPU += time.Duration(c.system.Load())
	c.wait.addTo(&out.QueueWait)
	c.run.addTo(&out.RunTime)
}

// observer keeps a dispatcher's counters and its subscribers. The manager
// goroutine writes the counters (Submit too, for the calls it takes in),
// and Stats reads them, without a lock and without waiting on the manager.
type observer struct {
	tasks sync.Map // task name -> *taskCounters

	childrenStarted atomic.Int64
	childrenExited  [numExitReasons]atomic.Int64
	spawnFailures   atomic.Int64
	serverRestarts  atomic.Int64
	eventsDropped   atomic.Int64

	subs  atomic.Pointer[[]*subscriber] // copied on write, under subMu
	subMu sync.Mutex
	ended bool // the dispatcher has ended: no more subscribers; under subMu

	// Owned by the manager goroutine: how the server-mode workers that
	// ended did, in order, until a restart takes the oldest.
	workerEnds []error
}

func (o *observer) task(name string) *taskCounters {
	if c, ok := o.tasks.Load(name); ok {
		return c.(*taskCounters)
	}
	c, _ := o.tasks.LoadOrStore(name, new(taskCounters))
	return c.(*taskCounters)
}

// jobObs is what the counters and events keep of a job.
type jobObs struct {
	counters  *taskCounters
	queuedAt  time.Time
	startedAt time.Time
	usage     result.Usage // what its last try cost, as its child said or its exit showed
	measured  bool         // usage is set
	logTail   []string     // the last records its task logged (task.Logger)
	// The progress of its running try, as counted in the task's
	// progDone and progTotal.
	progDone, progTotal int64
}

// setProgress counts j's latest progress; 0, 0 takes it out.
func (j *job) setProgress(done, total int64) {
	c := j.obs.counters
	if c == nil {
		return
	}
	c.progDone.Add(done - j.obs.progDone)
	c.progTotal.Add(total - j.obs.progTotal)
	j.obs.progDone, j.obs.progTotal = done, total
}

// Stats returns a snapshot of the dispatcher's counters. It never waits
// on the dispatcher's goroutine, and it may be called at any time, also
// after the dispatcher has ended.
func (d *Dispatcher) Stats() Stats {
	o := &d.obs
	s := Stats{Tasks: make(map[string]TaskStats)}
	o.tasks.Range(func(k, v any) bool {
		var t TaskStats
		v.(*taskCounters).addTo(&t)
		s.Tasks[k.(string)] = t
		v.(*taskCounters).addTo(&s.TaskStats)
		return true
	})
	if s.QueueWait.Bounds == nil {
		var empty taskCounters
		empty.addTo(&s.TaskStats)
	}
	s.ChildrenStarted = o.childrenStarted.Load()
	var exited int64
	for i := range o.childrenExited {
		s.ChildrenExited[i] = o.childrenExited[i].Load()
		exited += s.ChildrenExited[i]
	}
	s.Children = int(s.ChildrenStarted - exited)
	s.SpawnFailures = o.spawnFailures.Load()
	s.ServerRestarts = o.serverRestarts.Load()
	s.EventsDropped = o.eventsDropped.Load()
	if d.stderr != nil {
		s.StderrDropped = d.stderr.dropped.Load()
	}
	return s
}

// submitted counts j, a call just taken in (on the caller's goroutine,
// under d.mu, or on the manager's for a worker), as queued.
func (d *Dispatcher) submitted(j *job) {
	c := d.obs.task(j.call.Task)
	j.obs = jobObs{counters: c, queuedAt: time.Now()}
	c.scheduled.Add(1)
	d.moveJob(j, jobSubmitted)
}

// refuse fails c, a call that Submit does not take in, and counts it.
func (d *Dispatcher) refuse(c *task.Call, err error) {
	t := d.obs.task(c.Task)
	t.scheduled.Add(1)
	t.completed[outcomeOf(err)].Add(1)
	c.Fail(err)
}

// admitted queues j, a call the manager takes in, and says so.
func (d *Dispatcher) admitted(j *job) {
	d.moveJob(j, jobQueued)
	if d.obs.listening() {
		d.emit(Event{Kind: TaskQueued, Task: j.call.Task, Call: j.seq, Attempt: len(j.deaths) + 1})
	}
}

// began counts j, just handed to child c, as running.
func (d *Dispatcher) began(j *job, c *child) {
	now := time.Now()
	wait := now.Sub(j.obs.queuedAt)
	d.moveJob(j, jobRunning)
	j.obs.startedAt = now
	j.obs.counters.wait.observe(wait)
	if d.obs.listening() {
		d.emit(Event{Kind: TaskStarted, Task: j.call.Task, Call: j.seq, Attempt: len(j.deaths) + 1, Pid: c.p.Pid(), Wait: wait})
	}
}

// requeued counts j, back in the queue without having run, as queued.
func (d *Dispatcher) requeued(j *job) {
	d.moveJob(j, jobQueued)
	j.obs.queuedAt = time.Now()
}

// retried counts j, whose child died, as waiting for a retry after delay.
func (d *Dispatcher) retried(j *job, death *result.ChildDeath, delay time.Duration) {
	d.moveJob(j, jobWaiting)
	j.obs.queuedAt = time.Now()
	j.obs.counters.retries.Add(1)
	if d.obs.listening() {
		d.emit(Event{Kind: TaskRetried, Task: j.call.Task, Call: j.seq, Attempt: len(j.deaths) + 1, Pid: death.Pid, Err: death, Delay: delay})
	}
}

// ended counts j as done with err (nil: an answer).
func (d *Dispatcher) ended(j *job, err error) {
	if j.state == jobDone {
		return
	}
	var run time.Duration
	started := j.state == jobRunning || j.state == jobStopping
	if started {
		run = time.Since(j.obs.startedAt)
	}
	d.moveJob(j, jobDone)
	c := j.obs.counters
	if c == nil {
		return // never counted as taken in
	}
	if started {
		c.run.observe(run)
	}
	o := outcomeOf(err)
	c.completed[o].Add(1)
	var usage *result.Usage
	if j.obs.measured {
		usage = &j.obs.usage
		c.user.Add(int64(j.obs.usage.UserCPU))
		c.system.Add(int64(j.obs.usage.SystemCPU))
	}
	if usage != nil || len(j.obs.logTail) > 0 {
		j.call.ReportEnd(usage, j.obs.logTail)
	}
	if j.worker {
		d.obs.workerEnds = append(d.obs.workerEnds, err)
	}
	if d.obs.listening() {
		d.emit(Event{Kind: TaskDone, Task: j.call.Task, Call: j.seq, Attempt: len(j.deaths) + 1, Outcome: o, RunTime: run, Err: err, Usage: j.obs.usage})
	}
}

// childStarted counts c, a child just started, for j (nil: a spare).
func (d *Dispatcher) childStarted(c *child) {
	d.obs.childrenStarted.Add(1)
	if d.obs.listening() {
		d.emit(Event{Kind: ChildStarted, Task: c.task, Pid: c.p.Pid()})
	}
}

// spawnFailed counts a child that could not be started for j (nil: a
// spare).
func (d *Dispatcher) spawnFailed(j *job, err error) {
	d.obs.spawnFailures.Add(1)
	if d.obs.listening() {
		e := Event{Kind: SpawnFailed, Err: err}
		if j != nil {
			e.Task, e.Call = j.call.Task, j.seq
		}
		d.emit(e)
	}
}

// childExited counts c, which ended as e says.
func (d *Dispatcher) childExited(c *child, e *procman.Exit) {
	r := c.exitReason(e)
	d.obs.childrenExited[r].Add(1)
	if d.obs.listening() {
		ev := Event{Kind: ChildExited, Task: c.task, Pid: e.Pid, Exit: r, RunTime: e.Duration}
		if r == ExitCrashed || r == ExitKilled {
			ev.Err = e.Err
			if c.errw != nil {
				ev.Cause, _ = c.errw.crash.results()
			}
			if ev.Cause == "" && e.Err == nil {
				ev.Cause = e.String()
			}
		}
		d.emit(ev)
	}
}

// exitReason says why c ended as e says.
func (c *child) exitReason(e *procman.Exit) ExitReason {
	switch {
	case c.inactive || c.stoppedCall || len(c.sent) > 0 || e.Err != nil || (c.d.killed && !e.Success()):
		return ExitKilled
	case !e.Success():
		return ExitCrashed
	case c.retiring:
		return ExitOverMemory
	case !c.oldAt.IsZero() && !c.oldAt.After(time.Now()) && (c.limit <= 0 || c.given < c.limit):
		return ExitTooOld
	}
	return ExitRetired
}

// restarting counts a server-mode worker started as task name: a restart
// when a worker ended before it, which it then logs at Warn with how that
// worker ended.
func (d *Dispatcher) restarting(name string) {
	o := &d.obs
	if len(o.workerEnds) == 0 {
		return
	}
	cause := o.workerEnds[0]
	o.workerEnds[0] = nil
	o.workerEnds = o.workerEnds[1:]
	n := o.serverRestarts.Add(1)
	how := "it returned"
	if cause != nil {
		how = cause.Error()
	}
	d.log.Warn("restarting a server worker that ended", "task", name, "restarts", n, "cause", how)
	if o.listening() {
		d.emit(Event{Kind: WorkerRestarted, Task: name, Err: cause, Restarts: n})
	}
}
