package dispatcher

import (
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
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
