package dispatcher

import (
	"context"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/tune"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// job is one scheduled call, from Submit to its resolution. Its fields
// other than call and seq belong to the manager goroutine.
type job struct {
	call     *task.Call
	seq      uint64
	deadline time.Time // the earlier of the call's and its context's; zero: none

	state     jobState
	n         uint64               // its invocation's number in its child, from 1
	stopCtx   func() bool          // undoes context.AfterFunc
	child     *child               // the child running it, or nil
	cause     error                // why it is being stopped while it runs (a context's error)
	deaths    []*result.ChildDeath // the tries that died, when it retries
	timers    [jobTimers]*timer    // its timers in the heap, by kind; removed when it resolves
	refusedAt time.Time            // when the system first refused a child for it; zero: never
	worker    bool                 // a server-mode worker: Join does not wait for it
	obs       jobObs               // what Stats and the events keep of it
}

func newJob(c *task.Call, seq uint64) *job {
	j := &job{call: c, seq: seq, deadline: c.Deadline}
	if c.Context != nil {
		if dl, ok := c.Context.Deadline(); ok && (j.deadline.IsZero() || dl.Before(j.deadline)) {
			j.deadline = dl
		}
	}
	return j
}

// needsOwnChild reports whether the job must run in a child started for it.
func (j *job) needsOwnChild() bool { return j.call.Process != nil }

// cancellable reports whether the job may be stopped while it runs: its
// child then catches the termination signal.
func (j *job) cancellable() bool {
	return j.call.Context != nil || !j.deadline.IsZero() || j.call.ActivityTimeout > 0
}

// admit takes a job in: it is queued, and its context and deadline are
// watched.
func (d *Dispatcher) admit(j *job) {
	d.admitted(j)
	if ctx := j.call.Context; ctx != nil {
		if err := ctx.Err(); err != nil {
			d.resolve(j, nil, &result.CancelError{Task: j.call.Task, Cause: err})
			return
		}
		j.stopCtx = context.AfterFunc(ctx, func() {
			d.post(cancelReq{j: j, cause: ctx.Err()})
		})
	}
	if !j.deadline.IsZero() {
		if !time.Now().Before(j.deadline) {
			d.resolve(j, nil, &result.CancelError{Task: j.call.Task, Cause: context.DeadlineExceeded})
			return
		}
		d.timers.add(&timer{at: j.deadline, j: j, kind: timerDeadline})
	}
	d.pending = append(d.pending, j)
}

// post queues x for the manager goroutine and wakes it.
func (d *Dispatcher) post(x any) {
	d.mu.Lock()
	if d.closed() {
		d.mu.Unlock()
		return
	}
	d.inbox = append(d.inbox, x)
	d.mu.Unlock()
	d.wakeup()
}

// cancel stops j because cause (a context's error) happened. A queued job
// is resolved at once and never starts; a running one is stopped with the
// termination sequence and resolved when its child answers or ends.
func (d *Dispatcher) cancel(j *job, cause error) {
	switch j.state {
	case jobRunning:
		j.cause = cause
		d.moveJob(j, jobStopping)
		if c := j.child; len(c.inflight) == 1 {
			c.terminate()
		} else {
			d.withdraw(c, j)
		}
		return
	case jobQueued:
		d.unqueue(j)
	case jobWaiting:
	default: // stopping, or done
		return
	}
	d.resolve(j, nil, &result.CancelError{Task: j.call.Task, Cause: cause})
}

// withdraw stops j, sent to child c along with other jobs, and nothing
// else. The dispatcher cannot tell whether c has begun j: its answer to
// the job before may be on its way. So c decides, as it takes j: a job it
// has not begun never runs, and its future resolves (see
// Dispatcher.skipped); one that runs it stops itself, with the first step
// of the termination sequence, and it takes nothing after it: the jobs
// behind go back to the queue when it exits. Should a job that c runs
// still run at the end of the grace period, c is killed (see
// child.starts).
func (d *Dispatcher) withdraw(c *child, j *job) {
	if err := tune.Withdraw(c.p, j.n); err != nil {
		// The child is gone or going; its exit resolves the job.
		d.log.Debug("withdrawing a call", "pid", c.p.Pid(), "error", err)
	}
	if c.running() == j {
		d.timers.add(&timer{at: time.Now().Add(d.grace), kind: timerCut, c: c, j: j})
	}
}

// unqueue removes j from the queue.
func (d *Dispatcher) unqueue(j *job) {
	for i, x := range d.pending {
		if x == j {
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			return
		}
	}
}

// died handles the death of the child that ran j: a retry when the call
// allows one, else the end of the job.
func (d *Dispatcher) died(j *job, death *result.ChildDeath) {
	if j.cause != nil {
		d.resolve(j, nil, d.cancelError(j, death.Pid, death.Err))
		return
	}
	if len(j.deaths) < j.call.Retries && d.stop != killing {
		j.deaths = append(j.deaths, death)
		delay := j.call.RetryDelay << (len(j.deaths) - 1)
		if delay < 0 || (j.call.RetryDelay > 0 && delay < j.call.RetryDelay) {
			delay = time.Hour // the shift overflowed
		}
		d.timers.add(&timer{at: time.Now().Add(delay), j: j, kind: timerRetry})
		d.retried(j, death, delay) // waiting: a cancel in the delay finds it so, not running
		d.log.Debug("task's child died; retrying", "task", j.call.Task, "try", len(j.deaths), "delay", delay, "death", death.Error())
		return
	}
	d.resolve(j, nil, d.deathError(j, death))
}

// deathError is the error of a job whose last try died: the death itself,
// or, after retries, all of them.
func (d *Dispatcher) deathError(j *job, last *result.ChildDeath) error {
	if len(j.deaths) == 0 {
		if last == nil {
			return ErrClosed
		}
		return last
	}
	deaths := j.deaths
	if last != nil {
		deaths = append(deaths, last)
	}
	return &result.RetryError{Task: j.call.Task, Deaths: deaths}
}

// cancelError is the error of a job stopped while it ran in child pid.
func (d *Dispatcher) cancelError(j *job, pid int, _ error) error {
	e := &result.CancelError{Task: j.call.Task, Cause: j.cause, Started: true, Pid: pid}
	if c := j.child; c != nil {
		e.Sent = append(e.Sent, c.sent...)
	}
	return e
}

// retry puts a job whose retry delay is over back at the head of the queue.
func (d *Dispatcher) retry(j *job) {
	if j.state != jobWaiting {
		return
	}
	if d.stop == killing {
		d.resolve(j, nil, d.deathError(j, nil))
		return
	}
	d.moveJob(j, jobQueued)
	d.pending = append([]*job{j}, d.pending...)
}

// resolve settles a job with an answer or an error, and counts it for Join.
func (d *Dispatcher) resolve(j *job, payload []byte, err error) {
	if j.state == jobDone {
		return
	}
	d.timers.removeJob(j)
	if j.stopCtx != nil {
		j.stopCtx()
	}
	d.ended(j, err) // counted before the future resolves, so that its reader sees it in Stats
	if err != nil {
		j.call.Fail(err)
	} else {
		j.call.Resolve(payload)
	}
	d.woke = true
	if j.worker {
		return
	}
	if len(d.joins) == 0 {
		return
	}
	kept := d.joins[:0]
	for _, jr := range d.joins {
		if j.seq <= jr.bound {
			jr.left--
		}
		if jr.left == 0 {
			close(jr.done)
		} else {
			kept = append(kept, jr)
		}
	}
	d.joins = kept
}

// requeue puts the jobs of a dead child that never started (all of them
// but skip) back at the head of the queue, in their order. One that was
// withdrawn resolves instead: it never started.
func (d *Dispatcher) requeue(jobs []*job, skip *job) {
	var back []*job
	for _, j := range jobs {
		switch {
		case j == skip || j.state == jobDone:
			continue
		case j.state == jobStopping:
			d.resolve(j, nil, &result.CancelError{Task: j.call.Task, Cause: j.cause})
			continue
		}
		d.requeued(j)
		back = append(back, j)
	}
	if len(back) > 0 {
		d.pending = append(back, d.pending...)
	}
}
