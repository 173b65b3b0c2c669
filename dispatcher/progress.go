package dispatcher

import (
	"log/slog"
	"strconv"
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
	if j == nil || j.state == jobDone {
		return
	}
	c.lastBeat = time.Now()
	p, err := wire.DecodeProgress(payload)
	if err != nil {
		d.log.Warn("protocol error: a progress report that does not decode; ignored", "pid", c.p.Pid(), "task", j.call.Task, "error", err)
		return
	}
	rp := result.Progress{Done: p.Done, Total: p.Total, Attempt: len(j.deaths) + 1, Sent: p.Sent}
	j.setProgress(p.Done, p.Total)
	j.call.ReportProgress(rp)
	if d.obs.listening() {
		d.emit(Event{Kind: TaskProgress, Task: j.call.Task, Call: j.seq, Attempt: rp.Attempt, Pid: c.p.Pid(), Progress: rp})
	}
}

// used takes a usage frame from c about the call it runs, sent just
// before the call's answer.
func (d *Dispatcher) used(c *child, payload []byte) {
	j := c.running()
	if j == nil || j.state == jobDone {
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
	if !d.usage {
		return
	}
	j.obs.usage = result.Usage{UserCPU: e.UserTime, SystemCPU: e.SystemTime, MaxRSS: e.MaxRSS}
	j.obs.measured = true
}

// The most of a call's log records kept for its future: the last
// logTailLines, each cut at logLineMax bytes.
const (
	logTailLines = 20
	logLineMax   = 512
)

// logged takes a log frame from c about the call it runs: the record goes
// to the dispatcher's logger, tagged with the task, the call and the pid,
// and to the call's tail of records. The child bounds the rate.
func (d *Dispatcher) logged(c *child, payload []byte) {
	j := c.running()
	if j == nil || j.state == jobDone {
		return
	}
	rec, err := wire.DecodeLogRecord(payload)
	if err != nil {
		d.log.Warn("protocol error: a log record that does not decode; ignored", "pid", c.p.Pid(), "task", j.call.Task, "error", err)
		return
	}
	args := make([]any, 0, 6+len(rec.Attrs))
	args = append(args, "task", j.call.Task, "call", j.seq, "pid", c.p.Pid())
	for _, a := range rec.Attrs {
		args = append(args, a)
	}
	level := slog.Level(rec.Level)
	switch {
	case level < slog.LevelInfo:
		d.log.Debug(rec.Msg, args...)
	case level < slog.LevelWarn:
		d.log.Info(rec.Msg, args...)
	case level < slog.LevelError:
		d.log.Warn(rec.Msg, args...)
	default:
		d.log.Error(rec.Msg, args...)
	}
	line := level.String() + " " + rec.Msg
	for i := 0; i+1 < len(rec.Attrs); i += 2 {
		line += " " + rec.Attrs[i] + "=" + strconv.Quote(rec.Attrs[i+1])
	}
	if len(line) > logLineMax {
		line = line[:logLineMax]
	}
	if len(j.obs.logTail) == logTailLines {
		copy(j.obs.logTail, j.obs.logTail[1:])
		j.obs.logTail = j.obs.logTail[:logTailLines-1]
	}
	j.obs.logTail = append(j.obs.logTail, line)
}
