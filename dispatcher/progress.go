package dispatcher

import (
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
)

// progressed takes a progress frame from c about the call it runs (the
// process manager checked that the frame belongs to it): a sign of life,
// and the call's latest progress. The manager goroutine only stores it and
// signals; nothing here waits.
func (d *Dispatcher) progressed(c *child, payload []byte) {
	j := c.running()
	if j == nil || j.done {
		return
	}
	c.lastBeat = time.Now()
	p, err := wire.DecodeProgress(payload)
	if err != nil {
		d.log.Warn("protocol error: a progress report that does not decode; ignored", "pid", c.p.Pid(), "task", j.call.Task, "error", err)
		return
	}
	rp := result.Progress{Done: p.Done, Total: p.Total, Attempt: len(j.deaths) + 1, Sent: p.Sent}
	if d.obs.listening() {
		d.emit(Event{Kind: TaskProgress, Task: j.call.Task, Call: j.seq, Attempt: rp.Attempt, Pid: c.p.Pid(), Progress: rp})
	}
}

// used takes a usage frame from c about the call it runs, sent just
// before the call's answer.
func (d *Dispatcher) used(c *child, payload []byte) {
	j := c.running()
	if j == nil || j.done {
		return
	}
	u, err := wire.DecodeUsage(payload)
	if err != nil {
		d.log.Warn("protocol error: a usage report that does not decode; ignored", "pid", c.p.Pid(), "task", j.call.Task, "error", err)
		return
	}
	j.obs.usage = result.Usage{UserCPU: u.User, SystemCPU: u.System, MaxRSS: u.MaxRSS}
	j.obs.measured = true
}

// exitUsage takes what j's child cost, from its exit, when the child died
// before it said what the call cost: the child's whole life.
func (d *Dispatcher) exitUsage(j *job, e *procman.Exit) {
	j.obs.usage = result.Usage{UserCPU: e.UserTime, SystemCPU: e.SystemTime, MaxRSS: e.MaxRSS}
	j.obs.measured = true
}
