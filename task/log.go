package task

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
)

// The bounds of a call's log records in its child: records past the rate
// are dropped and counted; long messages and values are cut.
const (
	logRate     = 50  // records a second, on average
	logBurst    = 100 // records at once, after a quiet while
	logMaxMsg   = 4 << 10
	logMaxValue = 1 << 10
	logMaxAttrs = 32 // key and value pairs
)

// Logger returns a logger for the task: its records go to the parent, to
// the dispatcher's logger (dispatcher.WithLogger) tagged with the task's
// name, the call's number and the child's pid, and the last of them are
// kept on the call's future (result.Result.Log), for an error report.
// Records made after the task has returned are dropped. The child sends
// at most 50 records a second on average (100 at once after a quiet
// while); the rest are dropped, and the next record sent says how many
// were, in an attribute "dropped". Messages are cut at 4 KiB, values at
// 1 KiB. With a context that is not a task's it returns slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	r, _ := ctx.Value(progressKey).(*reporter)
	if r == nil {
		return slog.Default()
	}
	return slog.New(&logHandler{r: r})
}

// logHandler is the slog.Handler of Logger: it renders a record's
// attributes as text, groups as dotted keys, and has the call's reporter
// send it.
type logHandler struct {
	r      *reporter
	prefix string   // the open groups, as "a.b."
	attrs  []string // rendered by WithAttrs: key, value, ...
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, rec slog.Record) error {
	attrs := slices.Clone(h.attrs)
	rec.Attrs(func(a slog.Attr) bool {
		attrs = appendAttr(attrs, h.prefix, a)
		return len(attrs) < 2*logMaxAttrs
	})
	msg := rec.Message
	if len(msg) > logMaxMsg {
		msg = msg[:logMaxMsg]
	}
	t := rec.Time
	if t.IsZero() {
		t = time.Now()
	}
	return h.r.log(&wire.LogRecord{Level: int(rec.Level), Time: t, Msg: msg, Attrs: attrs})
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix += name + "."
	return &n
}

// appendAttr appends a's key and text value, and a group's members, to
// dst, up to logMaxAttrs pairs.
func appendAttr(dst []string, prefix string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) || len(dst) >= 2*logMaxAttrs {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			dst = appendAttr(dst, p, m)
		}
		return dst
	}
	v := a.Value.String()
	if len(v) > logMaxValue {
		v = v[:logMaxValue]
	}
	return append(dst, prefix+a.Key, v)
}

// log sends rec for the call, within the rate; see Logger.
func (r *reporter) log(rec *wire.LogRecord) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if r.logAt.IsZero() {
		r.tokens = logBurst
	} else {
		r.tokens = min(logBurst, r.tokens+now.Sub(r.logAt).Seconds()*logRate)
	}
	r.logAt = now
	if r.tokens < 1 {
		r.logDropped++
		return nil
	}
	r.tokens--
	return r.sendLogLocked(rec)
}

func (r *reporter) sendLogLocked(rec *wire.LogRecord) error {
	if r.logDropped > 0 {
		rec.Attrs = append(rec.Attrs, "dropped", strconv.FormatInt(r.logDropped, 10))
		r.logDropped = 0
	}
	r.buf = wire.AppendLogRecord(r.buf[:0], rec)
	return r.note(r.seq, wire.KindLog, r.buf)
}

// finishLogLocked says, at the call's end, how many records were dropped
// since the last one sent.
func (r *reporter) finishLogLocked() {
	if r.logDropped > 0 {
		_ = r.sendLogLocked(&wire.LogRecord{Level: int(slog.LevelWarn), Time: time.Now(), Msg: "procrastinate: the task's log records over the rate were dropped"})
	}
}
