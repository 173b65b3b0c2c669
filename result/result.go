package result

import (
	"context"
	"fmt"
	"sync"
)

// Resolver is the writing side of one future; the dispatcher holds it.
// It is safe for concurrent use. The first call to Resolve or Fail wins;
// later calls return false and change nothing. The zero Resolver is not
// usable: get one from [New].
type Resolver struct {
	done chan struct{} // closed once resolved

	mu       sync.Mutex
	resolved bool   // set under mu, before done is closed
	payload  []byte // the answer; dropped once decoded
	err      error  // the failure, if Fail won
}

func newResolver() *Resolver {
	return &Resolver{done: make(chan struct{})}
}

// Resolve resolves the future with payload, the encoded answer, and
// reports whether this call did it. It takes ownership of payload: the
// caller must not change it afterwards. It does not decode payload; the
// decoding happens later, on the goroutine of the future's first reader.
func (r *Resolver) Resolve(payload []byte) bool {
	return r.resolve(payload, nil)
}

// Fail resolves the future with err and reports whether this call did it.
// Readers of the future get err itself, unwrapped. Fail panics if err is
// nil.
func (r *Resolver) Fail(err error) bool {
	if err == nil {
		panic("result: Fail with nil error")
	}
	return r.resolve(nil, err)
}

func (r *Resolver) resolve(payload []byte, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resolved {
		return false
	}
	r.resolved = true
	r.payload, r.err = payload, err
	// Closing done under mu means a losing caller returns only after the
	// future is visibly resolved.
	close(r.done)
	return true
}

// Resolved reports whether the future has been resolved. It never waits.
func (r *Resolver) Resolved() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Done returns a channel that is closed once the future is resolved.
// It returns the same channel on every call.
func (r *Resolver) Done() <-chan struct{} {
	return r.done
}

// take returns what the future was resolved with and drops the resolver's
// reference to the payload. It must be called only after done is closed,
// and only once.
func (r *Resolver) take() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := r.payload, r.err
	r.payload = nil
	return p, err
}

// Result is a future: the value of type T that a task will answer with,
// or the error it ends with. It is safe for concurrent use, and every read
// returns the same value and error. The zero Result is not usable: get one
// from [New] or [Failed].
type Result[T any] struct {
	res *Resolver
	get func() (T, error) // decodes once; see New
}

// New returns a future and its resolver. decode turns the payload given to
// [Resolver.Resolve] into the value. It runs at most once, on the goroutine
// of the first caller of [Result.Value], [Result.Wait] or [Result.Err] after
// the future is resolved, and never on the goroutine that resolves it. If
// decode returns an error, readers get it wrapped as
// "result: decoding the answer: ..."; if it panics, every reader panics
// with the same value. New panics if decode is nil.
func New[T any](decode func([]byte) (T, error)) (*Result[T], *Resolver) {
	if decode == nil {
		panic("result: New with nil decode")
	}
	res := newResolver()
	get := sync.OnceValues(func() (T, error) {
		payload, err := res.take()
		if err != nil {
			var zero T
			return zero, err
		}
		v, err := decode(payload)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("result: decoding the answer: %w", err)
		}
		return v, nil
	})
	return &Result[T]{res: res, get: get}, res
}

// Failed returns a future already resolved with err, which its readers get
// unwrapped. It panics if err is nil.
func Failed[T any](err error) *Result[T] {
	if err == nil {
		panic("result: Failed with nil error")
	}
	r, res := New(func([]byte) (T, error) {
		var zero T
		return zero, nil // never called: the future fails
	})
	res.Fail(err)
	return r
}

// Value waits until the future is resolved and returns the decoded value,
// or the error it was resolved with. Every call returns the same thing.
func (r *Result[T]) Value() (T, error) {
	<-r.res.done
	return r.get()
}

// Wait is like [Result.Value] but gives up when ctx ends, returning the
// zero T and ctx.Err() itself (so that errors.Is(err, context.Canceled)
// works). Giving up does not stop the task or resolve the future; a later
// Value or Wait still gets the answer. If the future is already resolved,
// Wait returns its answer whatever the state of ctx.
func (r *Result[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-r.res.done:
		return r.get()
	default:
	}
	select {
	case <-r.res.done:
		return r.get()
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Ready reports whether the future is resolved, so that [Result.Value]
// would not wait. It never waits.
func (r *Result[T]) Ready() bool {
	return r.res.Resolved()
}

// Done returns a channel that is closed when the future is resolved, for
// use in a select. It never waits and returns the same channel on every
// call.
func (r *Result[T]) Done() <-chan struct{} {
	return r.res.done
}

// Err returns the future's error without waiting for the task: nil if the
// future is not resolved yet or if it was resolved with a value that
// decodes, and otherwise the error that [Result.Value] returns. If the
// future is resolved and not yet decoded, Err decodes it on the calling
// goroutine (and waits for a decoding already under way on another).
func (r *Result[T]) Err() error {
	if !r.Ready() {
		return nil
	}
	_, err := r.get()
	return err
}
