package dispatcher

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
	"github.com/procrastinate-go/procrastinate/internal/tune"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/task"
)

// run is the manager goroutine: it alone touches the dispatcher's state
// below the inbox.
func (d *Dispatcher) run(started chan<- error) {
	if err := d.pm.Setup(); err != nil {
		close(d.done)
		started <- fmt.Errorf("dispatcher: %w", err)
		return
	}
	started <- nil
	defer close(d.done)
	defer d.finish()
	pool := poolView{d}
	for {
		d.intake()
		d.fireTimers()
		d.handedOut = false
		d.assign()
		// What assign sent goes out before the strategy may start a child,
		// which holds this goroutine for the fork and exec.
		tune.Flush(d.pm)
		// A draining dispatcher asks its strategy only while work is
		// queued: with none, all the strategy could start is spares, which
		// would be retired at once, and the next Step would start them
		// again, for ever.
		d.wakeAt = time.Time{}
		if d.stop == running || (d.stop == draining && len(d.pending) > 0) {
			d.strat.Step(pool)
			d.assign()
			d.makeRoom()
		}
		if d.stop == draining {
			d.stopWorkers()
			d.failStalled()
			if len(d.pending) == 0 {
				d.retireIdle(-1)
			}
		}
		if d.stop == killing {
			d.kill()
		}
		if d.stop != running && len(d.pending) == 0 && d.waiting == 0 && d.pm.ProcessCount() == 0 {
			return
		}
		d.yieldToCallers()
		d.pm.SetDeadline(d.nextDeadline())
		if err := d.pm.Step(); err != nil {
			d.log.Error("process manager step failed; closing", "error", err)
			d.mu.Lock()
			d.closing = true
			d.mu.Unlock()
			d.stop = killing
			_ = d.pm.Teardown()
		}
	}
}

// yieldToCallers lets the callers of the futures resolved this round run
// first: woken onto this goroutine's P, they would otherwise wait until it
// sleeps in Step, or, before a fork, for the exec. Then it says the goodbyes
// that lingering children wait for (see child.Message). Said before, a
// goodbye's write, which wakes its child, would delay the caller.
func (d *Dispatcher) yieldToCallers() {
	if d.woke {
		d.woke = false
		runtime.Gosched()
	}
	for i, c := range d.goodbyes {
		c.p.CloseInput()
		d.goodbyes[i] = nil
	}
	d.goodbyes = d.goodbyes[:0]
}

// nextDeadline is when the manager goroutine must wake even if nothing
// happens: the earliest timer, the Step its strategy asked for, or, once it
// is killing, the end of the grace period. A killing dispatcher calls its
// strategy no more, so the strategy's last After is void: were it kept, it
// would pass during the grace period, and every wait after it would return
// at once.
func (d *Dispatcher) nextDeadline() time.Time {
	t := d.timers.next()
	var other time.Time
	if d.stop == killing {
		if !d.killed {
			other = d.killAt
		}
	} else {
		other = d.wakeAt
	}
	if t.IsZero() || (!other.IsZero() && other.Before(t)) {
		t = other
	}
	return t
}

// intake moves what other goroutines queued into the manager's state.
func (d *Dispatcher) intake() {
	d.mu.Lock()
	inbox := d.inbox
	d.inbox = nil
	d.mu.Unlock()
	var audits []auditReq
	for _, x := range inbox {
		switch x := x.(type) {
		case *job:
			tracepoint.Mark(tracepoint.JobTaken)
			d.admit(x)
		case cancelReq:
			d.cancel(x.j, x.cause)
		case *joinReq:
			x.left = d.unresolved - d.workerJobs
			if x.left == 0 {
				close(x.done)
			} else {
				d.joins = append(d.joins, x)
			}
		case auditReq:
			audits = append(audits, x)
		case stopReq:
			if x.mode > d.stop {
				d.stop = x.mode
				if x.mode == killing {
					d.killAt = time.Now().Add(d.grace)
				}
			}
		}
	}
	// After the whole inbox: a job taken in behind the request is queued by now.
	for _, a := range audits {
		a <- d.audit()
	}
}

// assign hands queued jobs to ready children, most recently used first
// (its pages are warm), and pipelined work to the child with the least in
// flight. Jobs that need a child of their own stay queued for Spawn;
// children past their age are retired.
func (d *Dispatcher) assign() {
	if len(d.ready) == 0 || len(d.pending) == 0 || d.stop == killing {
		return
	}
	now := time.Now()
	kept := d.pending[:0]
	for i, j := range d.pending {
		if len(d.ready) == 0 {
			d.pending = joinQueue(d.pending, len(kept), i)
			return
		}
		if j.needsOwnChild() {
			kept = append(kept, j)
			continue
		}
		c := d.pick(j, now)
		if c == nil {
			kept = append(kept, j)
			continue
		}
		c.give(j)
		if c.state == childReady && !c.canTake() {
			d.moveChild(c, childBusy)
		}
	}
	clear(d.pending[len(kept):])
	d.pending = kept
}

// joinQueue returns the queue q once a pass over its first i jobs has
// kept k of them, in order, at its front: the k kept jobs, then q[i:].
// It moves the k kept jobs next to q[i:] rather than q[i:] next to them,
// so that a pass that stops early (no child is ready) costs what it took
// from the queue, not the length of the queue; the slots it leaves are
// cleared for the collector, and reused when the queue next grows.
func joinQueue(q []*job, k, i int) []*job {
	copy(q[i-k:i], q[:k])
	clear(q[:i-k])
	return q[i-k:]
}

// pick chooses the ready child for j: among those that can take it, the
// one with the least in flight, the most recently readied on a tie.
// Children past their age are retired on the way.
func (d *Dispatcher) pick(j *job, now time.Time) *child {
	var best *child
	for i := len(d.ready) - 1; i >= 0; i-- {
		c := d.ready[i]
		if len(c.inflight) == 0 && c.tooOld(now) {
			d.moveChild(c, childRetiring)
			c.p.CloseInput()
			continue
		}
		if c.canTake() && (best == nil || len(c.inflight) < len(best.inflight)) {
			best = c
			if len(c.inflight) == 0 {
				break
			}
		}
	}
	return best
}

// makeRoom retires idle children that stand in the way of queued jobs
// that need a child of their own (a call with limits). No such job can go
// to an idle child, yet a strategy counts the idle child as taking one
// (Queued <= Idle) and, at its limit, counts it against starting another:
// without this, a call with limits would wait for ever behind a child kept
// idle for reuse or as a spare. The retired children exit, and the Steps
// that follow start children of their own for the jobs.
func (d *Dispatcher) makeRoom() {
	if d.ownJobs == 0 {
		return // the common case, without a scan of the queue
	}
	n := 0
	for _, j := range d.pending {
		if j.needsOwnChild() {
			n++
		}
	}
	if n > 0 {
		d.retireIdle(n)
	}
}

// retireIdle tells up to n children with nothing in flight (all of them
// when n < 0), the least recently readied first, that there is no more
// work for them.
func (d *Dispatcher) retireIdle(n int) {
	var idle []*child // collected first: moving one takes it off d.ready
	for _, c := range d.ready {
		if n != 0 && len(c.inflight) == 0 {
			n--
			idle = append(idle, c)
		}
	}
	for _, c := range idle {
		d.moveChild(c, childRetiring)
		c.p.CloseInput()
	}
}

// kill fails the queue and ends the children: a stop frame first, which
// ends their tasks' contexts, and the termination signal to the groups of
// the children that catch it (see child.invocation; a busy child that does
// not catches it on the stop frame and signals its own group, see
// the task package's child loop); SIGKILL when the grace period is over.
func (d *Dispatcher) kill() {
	for _, j := range d.pending {
		d.resolve(j, nil, ErrClosed)
	}
	d.pending = nil
	d.giveUpRetries()
	d.retireIdle(-1)
	if !d.termSent {
		d.termSent = true
		for _, p := range d.pm.Processes() {
			_ = p.Stop()
		}
		for c := range d.catchers {
			if err := c.p.Signal(d.termSig); err != nil && !errors.Is(err, procman.ErrProcessDone) {
				d.log.Warn("signalling a child", "pid", c.p.Pid(), "signal", d.termSig.String(), "error", err)
			}
		}
	}
	if !d.killed && !time.Now().Before(d.killAt) {
		d.killed = true
		_ = d.pm.KillProcesses(syscall.SIGKILL)
	}
}

// failStalled fails what is queued when a shutting-down dispatcher can
// make no more progress: no child left to take work or to exit, no timer,
// and a strategy that started nothing and asked for no later Step. Nothing
// would ever wake it again: Shutdown would wait for ever.
func (d *Dispatcher) failStalled() {
	if len(d.pending) == 0 || d.pm.ProcessCount() > 0 || d.timers.live() || !d.wakeAt.IsZero() {
		return
	}
	for _, j := range d.pending {
		d.resolve(j, nil, ErrStalled)
	}
	d.pending = nil
}

// giveUpRetries resolves the jobs waiting to be tried again with what
// their tries died of.
func (d *Dispatcher) giveUpRetries() {
	if d.waiting == 0 {
		return
	}
	var waiting []*job // collected first: resolving one takes its timer out of the heap
	for _, t := range d.timers {
		if t.kind == timerRetry && t.j.state == jobWaiting {
			waiting = append(waiting, t.j)
		}
	}
	for _, j := range waiting {
		d.resolve(j, nil, d.deathError(j, nil))
	}
}

// finish runs when the manager goroutine ends.
func (d *Dispatcher) finish() {
	if err := d.pm.Teardown(); err != nil {
		d.log.Error("tearing down the process manager", "error", err)
	}
	if d.stderr != nil {
		d.stderr.close()
	}
	if err := d.locks.Remove(); err != nil {
		d.log.Warn("removing the lock directory", "path", d.locks.Path(), "error", err)
	}
	d.mu.Lock()
	inbox := d.inbox
	d.inbox = nil
	d.mu.Unlock()
	for _, x := range inbox {
		if j, ok := x.(*job); ok {
			d.ended(j, ErrClosed)
			j.call.Fail(ErrClosed)
		}
	}
	for _, j := range d.pending {
		d.resolve(j, nil, ErrClosed)
	}
	d.pending = nil
	d.giveUpRetries()
	d.timers = nil
	for _, jr := range d.joins {
		close(jr.done)
	}
	d.joins = nil
	d.obs.endEvents()
}

// stopWorkers asks the children running server-mode workers to finish: a
// stop frame ends the worker's context; SIGKILL follows after the grace
// period.
func (d *Dispatcher) stopWorkers() {
	for c := range d.workers {
		if c.state >= childStopping {
			continue
		}
		d.moveChild(c, childStopping)
		if err := c.p.Stop(); err != nil {
			d.log.Debug("sending a stop frame", "pid", c.p.Pid(), "error", err)
		}
		d.timers.add(&timer{at: time.Now().Add(d.grace), kind: timerKill, c: c})
	}
}

// spawn starts one child. It takes the first queued job, or waits idle as
// a spare.
func (d *Dispatcher) spawn() error {
	if d.stop != running && len(d.pending) == 0 {
		// No spares once Shutdown was called: they would only be
		// retired (see run).
		return ErrClosed
	}
	var j *job
	if len(d.pending) > 0 {
		j = d.pending[0]
	}
	return d.start(j, false)
}

// start starts a child for j, or a spare when j is nil. A worker's child
// is started for it alone and is stopped at Shutdown.
func (d *Dispatcher) start(j *job, worker bool) error {
	c := d.newChild(worker || (j != nil && j.needsOwnChild()))
	spec := procman.Spec{StderrTail: d.tail}
	if d.tail > 0 {
		c.errw = &childStderr{c: c, sink: d.stderr}
		spec.StderrCopy = c.errw
	}
	last := false
	if j != nil {
		spec.Name = j.call.Task
		c.task = j.call.Task
		spec.Invocation, last = c.invocation(j)
		if l := j.call.Process; l != nil {
			spec.Dir, spec.Env = l.Dir, l.Env
			spec.Rlimits, spec.Nice = rlimits(l), l.Nice
		}
	}
	// The callers this round woke run first: the fork holds this
	// goroutine's P without giving it up, and they would wait for the exec.
	d.yieldToCallers()
	p, err := d.pm.CreateProcess(spec, c)
	if err != nil {
		d.spawnFailed(j, err)
		if transient(err) {
			if d.refused(j, worker) {
				d.log.Warn("the system refused a child; its task waits", "task", j.call.Task, "error", err, "pause", time.Until(d.pausedUntil))
				return err // j stays at the head of the queue
			}
			if j != nil && !worker {
				err = fmt.Errorf("the system has refused children for %v: %w", time.Since(d.refusingSince).Round(time.Millisecond), err)
			}
		}
		d.log.Error("starting a child", "error", err)
		if j != nil {
			if !worker {
				d.pending = d.pending[1:]
				if len(d.pending) > 0 {
					// The strategy stops spawning for this step at an
					// error; the jobs behind this one must not wait
					// for an unrelated event to be started.
					poolView{d}.After(0)
				}
			}
			d.resolve(j, nil, fmt.Errorf("dispatcher: task %q: %w", j.call.Task, err))
		}
		return err
	}
	d.started()
	c.p = p
	d.childStarted(c)
	if j != nil {
		if !worker {
			d.pending = d.pending[1:]
		}
		c.inflight = append(c.inflight, j)
		j.child = c
		j.n = 1
		d.began(j, c)
		c.watchActivity(j)
	}
	if last {
		d.moveChild(c, childRetiring)
	} else {
		d.offer(c)
	}
	c.noteCatcher()
	if worker {
		c.worker = true
		d.workers[c] = struct{}{}
	}
	return nil
}

// poolView is the dispatcher as its strategy sees it.
type poolView struct{ d *Dispatcher }

// Queued reports the queued jobs; while none is queued, the spares that
// the policy asks for, if fewer children are idle (see strategy.Pool):
// the strategy starts them within its own limits, as children for work
// to come.
func (v poolView) Queued() int {
	if n := len(v.d.pending); n > 0 {
		return n
	}
	if s := v.d.policy.Spares; s > 0 && v.d.stop == running && v.Idle() < s {
		return s
	}
	return 0
}

func (v poolView) Children() int { return v.d.pm.ProcessCount() }
func (v poolView) Idle() int {
	n := 0
	for _, c := range v.d.ready {
		if len(c.inflight) == 0 {
			n++
		}
	}
	return n
}
func (v poolView) Spawn() error {
	d := v.d
	if len(d.pending) == 0 && d.handedOut {
		// A spare, in the round that handed work to an idle child: start
		// it a little later, so that the fork and exec do not hold up the
		// answer, which often comes within the time they take.
		v.After(spareDelay)
		return errSpareDeferred
	}
	if err := v.mayStart(); err != nil {
		return err
	}
	return d.spawn()
}

// spareDelay is how long a spare's start waits after work was handed to
// an idle child.
const spareDelay = time.Millisecond

// errSpareDeferred tells the strategy to stop spawning for this step: the
// dispatcher will ask again (spareDelay).
var errSpareDeferred = errors.New("dispatcher: a spare's start is deferred to the next step")

// SpawnCall starts a child for c alone: a server-mode worker. The call is
// admitted like a scheduled one (its future resolves when the worker ends),
// and the child is stopped at Shutdown. It fails with ErrClosed once
// Shutdown or Close was called.
func (v poolView) SpawnCall(c *task.Call) error {
	d := v.d
	if d.stop != running {
		c.Fail(ErrClosed)
		return ErrClosed
	}
	d.restarting(c.Task)
	d.mu.Lock()
	d.seq++
	j := newJob(c, d.seq)
	d.mu.Unlock()
	d.submitted(j)
	j.worker = true
	d.workerJobs++
	d.admit(j)
	if j.state == jobDone {
		return nil
	}
	d.unqueue(j)
	return d.start(j, true)
}

// Fail records that the strategy gave up (see Dispatcher.Failed).
func (v poolView) Fail(err error) { v.d.fail(err) }
func (v poolView) After(dur time.Duration) {
	t := time.Now().Add(dur)
	if v.d.wakeAt.IsZero() || t.Before(v.d.wakeAt) {
		v.d.wakeAt = t
	}
}
