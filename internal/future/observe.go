package future

import (
	"slices"
	"time"
)

// Progress is a call's latest progress report; see result.Progress.
type Progress struct {
	Done, Total int64
	Attempt     int
	Sent        time.Time
}

// Usage is what a call cost its child; see result.Usage.
type Usage struct {
	UserCPU, SystemCPU time.Duration
	MaxRSS             int64
}

// observed is what a future keeps beside its answer: the call's latest
// progress while it runs, and what it cost and logged once it ended. Its
// fields are under Future.mu. A future gets one when the first of it
// comes (see Future.observedLocked), so that the many futures that never
// have any stay small to allocate.
type observed struct {
	progress    Progress
	hasProgress bool
	gen         uint64           // counts the progress stored
	changed     chan struct{}    // closed at the next change, or at resolution; nil until asked for
	callbacks   []func(Progress) // OnProgress's
	notifying   bool             // a goroutine is calling the callbacks
	usage       Usage
	hasUsage    bool
	log         []string
}

// observedLocked returns f's observed, made if f has none yet.
func (f *Future) observedLocked() *observed {
	if f.obs == nil {
		f.obs = new(observed)
	}
	return f.obs
}

// SetProgress stores p as the latest progress, wakes the waiters of
// Changed, and has the callbacks called on a goroutine of their own. It
// drops p once f is resolved. It never waits: a callback that is slow
// sees the latest progress when it is called again, not every report.
func (f *Future) SetProgress(p Progress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return
	}
	f.observedLocked()
	f.obs.progress, f.obs.hasProgress = p, true
	f.obs.gen++
	if f.obs.changed != nil {
		close(f.obs.changed)
		f.obs.changed = nil
	}
	f.notifyLocked()
}

// notifyLocked starts the goroutine that calls the callbacks, unless it
// runs or there are none.
func (f *Future) notifyLocked() {
	if f.obs == nil || len(f.obs.callbacks) == 0 || f.obs.notifying || !f.obs.hasProgress {
		return
	}
	f.obs.notifying = true
	go f.notify()
}

// notify calls the callbacks with the latest progress until none came
// while they ran.
func (f *Future) notify() {
	for {
		f.mu.Lock()
		p, gen, cbs := f.obs.progress, f.obs.gen, f.obs.callbacks
		f.mu.Unlock()
		for _, cb := range cbs {
			cb(p)
		}
		f.mu.Lock()
		if f.obs.gen == gen && len(f.obs.callbacks) == len(cbs) {
			f.obs.notifying = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
	}
}

// Progress returns the latest progress, and whether there is one.
func (f *Future) Progress() (Progress, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.obs == nil {
		return Progress{}, false
	}
	return f.obs.progress, f.obs.hasProgress
}

// Changed returns a channel that is closed at the next change of the
// progress, or when f resolves; closed already when f is resolved.
func (f *Future) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return f.done
	}
	f.observedLocked()
	if f.obs.changed == nil {
		f.obs.changed = make(chan struct{})
	}
	return f.obs.changed
}

// OnProgress adds fn to the callbacks; it is called with the latest
// progress, now if there is one, and after each change.
func (f *Future) OnProgress(fn func(Progress)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observedLocked()
	f.obs.callbacks = append(slices.Clip(f.obs.callbacks), fn)
	f.notifyLocked()
}

// SetEnd stores what the call cost and the last lines it logged; call it
// before Resolve or Fail. A nil u means unknown.
func (f *Future) SetEnd(u *Usage, log []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return
	}
	f.observedLocked()
	if u != nil {
		f.obs.usage, f.obs.hasUsage = *u, true
	}
	f.obs.log = log
}

// Usage returns what the call cost, and whether it is known.
func (f *Future) Usage() (Usage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.obs == nil {
		return Usage{}, false
	}
	return f.obs.usage, f.obs.hasUsage
}

// Log returns the last lines the call logged.
func (f *Future) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.obs == nil {
		return nil
	}
	return slices.Clone(f.obs.log)
}
