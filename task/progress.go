package task

import (
	"context"
	"sync"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// progressEvery is the least time between two progress reports that a
// child sends for one call; the reports between are coalesced into the
// latest.
const progressEvery = 200 * time.Millisecond

// Progress reports how far the task is: done units of total, with total 0
// when it is not known. In the parent, the call's future holds the latest
// report (result.Result.Progress), and it counts as a sign of life for
// WithActivityTimeout.
//
// It is cheap enough to call for every unit of work, from any goroutine
// of the task: the child sends at most a few reports a second to the
// parent, the latest of those made, and always the last one before the
// task's answer, ahead of the answer. A report made after the task has
// returned is dropped, and never reaches another call. It returns an
// error only when the report could not be written to the parent (the
// parent has gone), and ErrNotInChild with a context that is not a task's.
func Progress(ctx context.Context, done, total int64) error {
	r, _ := ctx.Value(progressKey).(*reporter)
	if r == nil {
		return ErrNotInChild
	}
	return r.report(done, total)
}

// progressKey is the context key of the running call's reporter.
type progressKeyType struct{}

var progressKey progressKeyType

// reporter sends what one call reports in the child to the parent, in
// notes bound to the call's invocation (see procman.Child.Note): its progress,
// coalesced, and its log records (see Logger), within a rate.
type reporter struct {
	note func(seq uint64, kind procman.Kind, payload []byte) error // the child's Note
	seq  uint64                                                    // the invocation's number, which its notes carry

	mu       sync.Mutex
	latest   wire.Progress
	dirty    bool        // latest is not sent yet
	lastSent time.Time   // zero: nothing sent yet
	timer    *time.Timer // sends latest when its time comes; nil until first armed
	armed    bool        // timer is set to fire
	closed   bool        // the call is over: reports are dropped
	buf      []byte

	// Logger's rate: a token bucket, and the records it dropped since the
	// last one sent.
	tokens     float64
	logAt      time.Time
	logDropped int64
}

// withReporter returns ctx with a reporter for the call it runs, and the
// reporter; ctx unchanged and nil outside a child.
func withReporter(ctx context.Context) (context.Context, *reporter) {
	inv, ok := ctx.Value(childKey).(invocationOf)
	if !ok {
		return ctx, nil
	}
	r := &reporter{note: inv.c.Note, seq: inv.seq}
	return context.WithValue(ctx, progressKey, r), r
}

func (r *reporter) report(done, total int64) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.latest = wire.Progress{Done: done, Total: total, Sent: now}
	r.dirty = true
	wait := progressEvery - now.Sub(r.lastSent)
	if r.lastSent.IsZero() || wait <= 0 {
		return r.sendLocked()
	}
	if !r.armed {
		r.arm(wait)
	}
	return nil
}

// arm sets the timer to fire after wait.
func (r *reporter) arm(wait time.Duration) {
	r.armed = true
	if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.due)
		return
	}
	r.timer.Reset(wait)
}

// due sends the latest report when the timer fires, unless one went less
// than progressEvery ago: a timer that fired while report sent, and
// waited for the lock, must not send a second report right behind it.
func (r *reporter) due() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	if r.closed || !r.dirty {
		return
	}
	if wait := progressEvery - time.Since(r.lastSent); wait > 0 {
		r.arm(wait)
		return
	}
	_ = r.sendLocked() // a broken pipe shows in the task's next Progress and in its answer
}

func (r *reporter) sendLocked() error {
	if r.armed {
		r.timer.Stop()
		r.armed = false
	}
	r.buf = wire.AppendProgress(r.buf[:0], r.latest)
	r.lastSent = time.Now()
	r.dirty = false
	return r.note(r.seq, wire.KindProgress, r.buf)
}

// finish sends the report not sent yet, if any, and drops every report
// after it: the call is about to answer. It does nothing on a nil r.
func (r *reporter) finish() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirty {
		_ = r.sendLocked()
	}
	r.finishLogLocked()
	if r.armed {
		r.timer.Stop()
		r.armed = false
	}
	r.closed = true
}
