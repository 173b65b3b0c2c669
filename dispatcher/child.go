package dispatcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
)

// child is one child process of the dispatcher. Its fields belong to the
// manager goroutine.
type child struct {
	d        *Dispatcher
	p        *procman.Process
	state    childState
	inflight []*job    // sent and not answered, in order; the first is running
	limit    int       // tasks it may be given; < 0: no limit
	given    int       // tasks it was given
	oldAt    time.Time // retire it once this passes; zero: never
	retireOn *job      // the job it was running when it said it exits after its answer; nil: it did not say so
	retiring bool      // it said it exits after its current answer, over its memory limit
	// stoppedCall says that it stopped its running job, which the
	// dispatcher withdrew, and exits after its answer.
	stoppedCall bool
	worker      bool      // runs a server-mode worker (in d.workers)
	catches     bool      // an invocation told it to catch the termination signal
	linger      bool      // its last invocation asked it to wait for the goodbye
	lastBeat    time.Time // when it last sent a heartbeat, or was given its task
	killTimer   *timer    // the end of its grace period, in the timer heap; nil: none
	inactive    bool      // it was killed for want of heartbeats
	// sent holds the signals of its termination sequence that reached it.
	sent []syscall.Signal
	task string       // the task it was last given
	errw *childStderr // its captured stderr's way out; nil when not captured
}

// newChild sets up the bookkeeping of a child under the dispatcher's
// policy, with the random spread applied.
func (d *Dispatcher) newChild(own bool) *child {
	c := &child{d: d, limit: d.policy.Reuse}
	if own || c.limit == 0 {
		c.limit = 1
	}
	if c.limit > 1 && d.policy.Spread > 0 {
		c.limit = max(1, int(float64(c.limit)*spread(d.policy.Spread)))
	}
	if d.policy.MaxAge > 0 {
		age := time.Duration(float64(d.policy.MaxAge) * spread(d.policy.Spread))
		c.oldAt = time.Now().Add(age)
	}
	return c
}

// spread returns a factor in [1-f, 1+f].
func spread(f float64) float64 {
	if f <= 0 {
		return 1
	}
	return 1 + f*(2*rand.Float64()-1)
}

// invocation encodes j for c, marking it Last when c is to serve no more;
// last says so.
func (c *child) invocation(j *job) (payload []byte, last bool) {
	c.given++
	last = c.limit > 0 && c.given >= c.limit
	if c.tooOld(time.Now()) {
		last = true
	}
	inv := wire.Invocation{
		Task:     j.call.Task,
		Arg:      j.call.Arg,
		Deadline: j.deadline,
		LockDir:  c.d.locks.Path(),
		MaxRSS:   c.d.policy.MaxRSS,
		Last:     last,
		// A child given its last task while it waited (a spare, or a
		// reused child at its limit) is on the latency path: its exit
		// waits until the parent has the answer. One started for a
		// queued task exits at once; there, throughput is what counts.
		Linger: last && c.state != childStarting,
		Usage:  c.d.usage,
	}
	c.linger = inv.Linger
	// Only a call that may be cancelled, and a worker, which Close ends
	// the same way, have the child catch the termination signal from the
	// start: another child keeps the signal's default. Close asks the
	// others to stop with a stop frame, on which the child catches the
	// signal and sends it to its group itself (see Dispatcher.kill).
	inv.TermSignal = int(c.d.termSig)
	if j.cancellable() || j.worker {
		inv.CatchTerm = true
		c.catches = true
	}
	return wire.AppendInvocation(nil, &inv), last
}

// noteCatcher lists c, now that it has a process, among the children
// that catch the termination signal, if it does.
func (c *child) noteCatcher() {
	if c.catches && c.p != nil {
		c.d.catchers[c] = struct{}{}
	}
}

// canTake reports whether c may be given another job now: jobs are
// pipelined up to the policy's depth. A job that can be cancelled is
// pipelined too: stopping it withdraws it from its child (see
// Dispatcher.withdraw), which stops nothing else.
func (c *child) canTake() bool {
	return !c.state.takesNoMore() && len(c.inflight) < c.d.depth
}

// give sends j to c, a ready child.
func (c *child) give(j *job) {
	if len(c.inflight) == 0 {
		c.d.handedOut = true
	}
	c.inflight = append(c.inflight, j)
	j.child = c
	c.task = j.call.Task
	c.d.began(j, c)
	if len(c.inflight) == 1 {
		c.watchActivity(j)
	}
	inv, last := c.invocation(j)
	j.n = uint64(c.given)
	if last {
		c.d.moveChild(c, childRetiring)
	}
	c.noteCatcher()
	if err := c.p.Send(inv); err != nil {
		// The child is gone or going; its exit resolves the job.
		c.d.log.Debug("sending an invocation failed", "pid", c.p.Pid(), "error", err)
	}
}

// starts follows j, which begins to run in c now that the job before it
// answered: its activity check starts, and a job withdrawn while it
// waited gets the grace period the child has to stop it, should the
// child have begun it before it heard of the withdrawal.
func (c *child) starts(j *job) {
	c.watchActivity(j)
	if j.state == jobStopping {
		c.d.timers.add(&timer{at: time.Now().Add(c.d.grace), kind: timerCut, c: c, j: j})
	}
}

// cutOverdue kills c when j, which the dispatcher withdrew while c ran
// it, still runs in it at the end of the grace period.
func (c *child) cutOverdue(j *job) {
	if j.state != jobStopping || c.running() != j || c.p.State() != procman.StateRunning {
		return
	}
	c.d.moveChild(c, childEnding)
	c.signal(syscall.SIGKILL)
}

// watchActivity starts the activity check for j, if its call has one.
func (c *child) watchActivity(j *job) {
	if a := j.call.ActivityTimeout; a > 0 {
		c.lastBeat = time.Now()
		c.d.timers.add(&timer{at: c.lastBeat.Add(a), kind: timerActivity, c: c, j: j})
	}
}

// checkActivity kills c when j, still running in it, has sent no heartbeat
// for its activity timeout, and looks again later otherwise.
func (c *child) checkActivity(j *job) {
	if j.state == jobDone || c.running() != j || c.p.State() != procman.StateRunning {
		return
	}
	due := c.lastBeat.Add(j.call.ActivityTimeout)
	if time.Now().Before(due) {
		c.d.timers.add(&timer{at: due, kind: timerActivity, c: c, j: j})
		return
	}
	c.d.log.Warn("a task sent no heartbeat in time; killing its child", "task", j.call.Task, "pid", c.p.Pid(), "activity timeout", j.call.ActivityTimeout)
	c.inactive = true
	c.d.moveChild(c, childEnding)
	c.signal(syscall.SIGKILL)
}

// pid returns c's process id, or 0 while it is being started.
func (c *child) pid() int {
	if c.p == nil {
		return 0
	}
	return c.p.Pid()
}

// running returns the job c is running, or nil.
func (c *child) running() *job {
	if len(c.inflight) == 0 {
		return nil
	}
	return c.inflight[0]
}

// tooOld reports whether c has passed its age.
func (c *child) tooOld(now time.Time) bool {
	return !c.oldAt.IsZero() && !now.Before(c.oldAt)
}

// terminate starts the termination sequence on c: the first signal now,
// SIGKILL when the grace period is over.
func (c *child) terminate() {
	if c.state >= childEnding {
		return
	}
	c.d.moveChild(c, childEnding)
	c.signal(c.d.termSig)
	c.d.timers.add(&timer{at: time.Now().Add(c.d.grace), kind: timerKill, c: c})
}

// kill ends the termination sequence, if c still runs.
func (c *child) kill() {
	if c.p.State() == procman.StateRunning {
		c.signal(syscall.SIGKILL)
	}
}

// signal sends sig to c and its group, and records it in c.sent when it
// reached c: one sent to a child that had already exited is not.
func (c *child) signal(sig syscall.Signal) {
	err := c.p.Signal(sig)
	switch {
	case errors.Is(err, procman.ErrProcessDone):
	case err != nil:
		c.d.log.Warn("signalling a child", "pid", c.p.Pid(), "signal", sig.String(), "error", err)
	default:
		c.sent = append(c.sent, sig)
	}
}

// Reply implements procman.Handler: the answer or the failure of the
// task in flight.
func (c *child) Reply(p *procman.Process, k procman.Kind, payload []byte) {
	d := c.d
	d.childRan()
	{
		tracepoint.Mark(tracepoint.AnswerRead)
		j := c.running()
		if j == nil {
			d.log.Warn("protocol error: a child answered with no task in flight; ignored", "pid", p.Pid(), "kind", wire.KindName(k))
			return
		}
		c.inflight[0] = nil
		c.inflight = c.inflight[1:]
		switch {
		case j.state == jobDone:
			// Withdrawn, and resolved when the child said it would not
			// begin it: this is its skipped answer.
		case k == wire.KindSkipped && j.cause == nil:
			d.resolve(j, nil, &result.TaskError{Task: j.call.Task, Pid: p.Pid(), Message: "protocol error: the child skipped a call that was not withdrawn"})
		case k == wire.KindSkipped:
			d.resolve(j, nil, &result.CancelError{Task: j.call.Task, Cause: j.cause})
		case j.cause == nil && k == wire.KindTaskFailed && !j.deadline.IsZero() && !time.Now().Before(j.deadline):
			// The task saw its deadline in the child (its context carries
			// it) and failed with it, just before our timer would fire.
			j.cause = context.DeadlineExceeded
			d.resolve(j, nil, d.cancelError(j, p.Pid(), nil))
		case j.cause != nil:
			d.resolve(j, nil, d.cancelError(j, p.Pid(), nil))
		case k == wire.KindAnswer:
			d.resolve(j, payload, nil)
		default:
			d.resolve(j, nil, taskError(j, p.Pid(), payload))
		}
		tracepoint.Mark(tracepoint.Resolved)
		if next := c.running(); next != nil && next.state != jobDone && j != c.retireOn {
			// (After the answer it said it exits on, nothing starts.)
			c.starts(next)
		}
		if c.linger && c.state.takesNoMore() && len(c.inflight) == 0 {
			// The goodbye it waits for, said once the caller has run
			// (see Dispatcher.yieldToCallers): said now, its write
			// would wake the child on the caller's way.
			d.goodbyes = append(d.goodbyes, c)
		}
		d.offer(c)
	}
}

// Note implements procman.Handler: a heartbeat, progress, what the call
// cost, a log record, or the word that the child takes no more work after
// its answer.
func (c *child) Note(p *procman.Process, k procman.Kind, payload []byte) {
	d := c.d
	d.childRan()
	switch k {
	case wire.KindHeartbeat:
		c.lastBeat = time.Now()
	case wire.KindProgress:
		d.progressed(c, payload)
	case wire.KindUsage:
		d.used(c, payload)
	case wire.KindLog:
		d.logged(c, payload)
	case wire.KindRetiring, wire.KindStopped:
		c.retiring = k == wire.KindRetiring
		c.stoppedCall = k == wire.KindStopped
		c.retireOn = c.running()
		if !c.state.takesNoMore() {
			d.moveChild(c, childRetiring)
		}
	case wire.KindWithdrawn:
		d.skipped(c, payload)
	}
}

// skipped takes c's word that it will not begin a job that the
// dispatcher withdrew while it waited in c's pipeline: the job resolves
// now, and its place in the pipeline is kept until its skipped answer.
func (d *Dispatcher) skipped(c *child, payload []byte) {
	n, k := binary.Uvarint(payload)
	if k <= 0 || k != len(payload) {
		d.log.Warn("protocol error: a withdrawal note that does not decode; ignored", "pid", c.p.Pid())
		return
	}
	for _, j := range c.inflight[1:] {
		if j.n == n && j.state == jobStopping {
			d.resolve(j, nil, &result.CancelError{Task: j.call.Task, Cause: j.cause})
			return
		}
	}
}

func taskError(j *job, pid int, payload []byte) error {
	f, err := wire.DecodeFailure(payload)
	if err != nil {
		return &result.TaskError{Task: j.call.Task, Pid: pid, Message: fmt.Sprintf("the child's failure report does not decode: %v", err)}
	}
	return &result.TaskError{Task: j.call.Task, Pid: pid, Message: f.Message, Panicked: f.Panicked, Stack: f.Stack}
}

// Exited implements procman.Handler.
func (c *child) Exited(p *procman.Process, e *procman.Exit) {
	d := c.d
	if c.errw != nil {
		c.errw.end()
	}
	d.childExited(c, e)
	d.moveChild(c, childGone)
	d.timers.remove(c.killTimer)
	c.killTimer = nil
	if len(c.inflight) == 0 {
		return
	}
	var inflight []*job // without the withdrawn jobs resolved already
	for _, j := range c.inflight {
		if j.state != jobDone {
			inflight = append(inflight, j)
		}
	}
	c.inflight = nil
	if len(inflight) == 0 {
		return
	}
	// The jobs behind the first never started: they go back to the head
	// of the queue. The first died with the child, unless the child
	// retired cleanly after answering the job it said it retired on, in
	// which case the first never started either. A child that says it
	// retires and then exits without answering that job has died with
	// it: were the job put back, it would run again, and again, for ever.
	first := inflight[0]
	if c.retireOn != nil && e.Success() && first != c.retireOn {
		first = nil
	}
	if first != nil && c.refusedThread(first, e) {
		first = nil // it never began: back to the queue with the rest
	}
	d.requeue(inflight, first)
	if first == nil {
		return
	}
	j := first
	cause := e.Err
	switch {
	case cause != nil:
	case c.inactive:
		cause = ErrInactive
	case d.stop == killing:
		cause = ErrKilled
	}
	var crash, stack string
	if c.errw != nil {
		crash, stack = c.errw.crash.results()
	}
	d.exitUsage(j, e)
	d.died(j, &result.ChildDeath{
		Task:     j.call.Task,
		Pid:      e.Pid,
		ExitCode: e.ExitCode,
		Signal:   e.Signal,
		Duration: e.Duration,
		Stderr:   e.Stderr,
		Err:      cause,
		Limit:    limitHit(j, e),
		Cause:    crash,
		Stack:    stack,
	})
}

// refusedThread reports whether c died before it read anything because
// the system gave its Go runtime no thread: then j, its first task, never
// began, and is tried again as a start that the system refused (see
// Dispatcher.refused). A child that read something ran, whatever it died
// of (see Dispatcher.childRan).
func (c *child) refusedThread(j *job, e *procman.Exit) bool {
	d := c.d
	if !e.NeverRead {
		d.childRan()
		return false
	}
	if j.cause != nil || j.worker || d.stop == killing || !threadRefused(e.Stderr) {
		return false
	}
	if !d.refused(j, false) {
		return false
	}
	d.log.Warn("a child died for want of a thread before it read its task; the task waits", "task", j.call.Task, "pid", e.Pid, "pause", time.Until(d.pausedUntil))
	return true
}
