// Package future holds the core of a future that is not generic: the
// channel closed on resolution, and what it was resolved with. Package
// result wraps it in the typed result.Result; package task makes one for
// each call and hands the writing side to the scheduler in task.Call.
//
// The core is a struct behind one mutex, so that what a call reports
// beside its answer (its progress while it runs, what it cost once it
// ended) can be kept here, for every type of result alike.
package future

import "sync"

// Future is one future's state. It is safe for concurrent use. The first
// call to Resolve or Fail wins; later calls return false and change
// nothing. The zero Future is not usable: get one from New.
type Future struct {
	done chan struct{} // closed once resolved

	mu       sync.Mutex
	resolved bool      // set under mu, before done is closed
	payload  []byte    // the answer; dropped once taken
	err      error     // the failure, if Fail won
	obs      *observed // made when the first of it comes; most futures never have any
}

// New returns an unresolved Future.
func New() *Future {
	return &Future{done: make(chan struct{})}
}

// Resolve resolves f with payload, the encoded answer, and reports whether
// this call did it. It takes ownership of payload.
func (f *Future) Resolve(payload []byte) bool {
	return f.settle(payload, nil)
}

// Fail resolves f with err and reports whether this call did it. It
// panics if err is nil.
func (f *Future) Fail(err error) bool {
	if err == nil {
		panic("future: Fail with nil error")
	}
	return f.settle(nil, err)
}

func (f *Future) settle(payload []byte, err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved {
		return false
	}
	f.resolved = true
	f.payload, f.err = payload, err
	if f.obs != nil && f.obs.changed != nil {
		close(f.obs.changed) // no change will come: ProgressChanged's waiters go on
		f.obs.changed = nil
	}
	// Closing done under mu means a losing caller returns only after the
	// future is visibly resolved.
	close(f.done)
	return true
}

// Done returns the channel that is closed once f is resolved.
func (f *Future) Done() <-chan struct{} { return f.done }

// Resolved reports whether f is resolved. It never waits.
func (f *Future) Resolved() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Take returns what f was resolved with, and drops f's reference to the
// payload. It must be called only once f is resolved, and only once.
func (f *Future) Take() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.payload, f.err
	f.payload = nil
	return p, err
}

// Bind binds r, a new *result.Result[T], to f, with decode, a
// func([]byte) (T, error) that turns f's payload into the value. Package
// result sets it in its init; package task calls it.
var Bind func(r any, f *Future, decode any)
