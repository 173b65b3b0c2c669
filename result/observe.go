package result

import "github.com/procrastinate-go/procrastinate/internal/future"

// Progress returns the latest progress that the call's task reported
// (task.Progress), and whether it reported any. It never waits. Once the
// future is resolved it stays as the last report before the answer.
func (r *Result[T]) Progress() (Progress, bool) {
	p, ok := r.f.Progress()
	return Progress(p), ok
}

// ProgressChanged returns a channel that is closed at the next change of
// the call's progress, or when the future resolves; one already closed
// when the future is resolved. Call it again for the change after.
func (r *Result[T]) ProgressChanged() <-chan struct{} { return r.f.Changed() }

// OnProgress has fn called with the call's progress: with the latest
// report at once, if there is one, and after each change. fn runs on a
// goroutine of the future's own, never on the dispatcher's, one call at a
// time for this future; a slow fn holds up nothing else, and sees the
// latest report when it is called again, not every report.
func (r *Result[T]) OnProgress(fn func(Progress)) {
	r.f.OnProgress(func(p future.Progress) { fn(Progress(p)) })
}

// Usage returns what the call cost its child, once the future is
// resolved, and whether that is known: it is not for a call that never
// started.
func (r *Result[T]) Usage() (Usage, bool) {
	u, ok := r.f.Usage()
	return Usage(u), ok
}

// Log returns the last lines that the call's task logged with
// task.Logger, oldest first: at most 20, each at most 512 bytes. It is
// set when the future resolves.
func (r *Result[T]) Log() []string { return r.f.Log() }
