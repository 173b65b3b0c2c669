package result

import (
	"context"
	"fmt"
	"sync"

	"github.com/procrastinate-go/procrastinate/internal/future"
)

// Result is a future: the value of type T that a task will answer with,
// or the error it ends with. It is safe for concurrent use, and every read
// returns the same value and error. Get one from task.Def.Schedule (or
// procrastinate.Schedule); the zero Result is not usable.
//
// Every Result resolves exactly once. What it resolves to, for every way
// a task can end, is listed in [docs/failure.md].
//
// [docs/failure.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/failure.md
type Result[T any] struct {
	f   *future.Future
	get func() (T, error) // decodes once; see bind
}

// binder is what every *Result[T] is to the hook of internal/future.
type binder interface {
	bind(f *future.Future, decode any)
}

func init() {
	future.Bind = func(r any, f *future.Future, decode any) { r.(binder).bind(f, decode) }
}

// bind makes r the reading side of f. decode, a func([]byte) (T, error),
// turns the payload that f is resolved with into the value. It runs at
// most once, on the goroutine of the first caller of Value, Wait or Err
// after f is resolved, and never on the goroutine that resolves it. If
// decode returns an error, readers get it wrapped as
// "result: decoding the answer: ..."; if it panics, every reader panics
// with the same value.
func (r *Result[T]) bind(f *future.Future, decode any) {
	dec := decode.(func([]byte) (T, error))
	r.f = f
	r.get = sync.OnceValues(func() (T, error) {
		payload, err := f.Take()
		if err != nil {
			var zero T
			return zero, err
		}
		v, err := dec(payload)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("result: decoding the answer: %w", err)
		}
		return v, nil
	})
}

// Value waits until the future is resolved and returns the decoded value,
// or the error it was resolved with. Every call returns the same thing.
func (r *Result[T]) Value() (T, error) {
	<-r.f.Done()
	return r.get()
}

// Wait is like [Result.Value] but gives up when ctx ends, returning the
// zero T and ctx.Err() itself (so that errors.Is(err, context.Canceled)
// works). Giving up does not stop the task or resolve the future; a later
// Value or Wait still gets the answer. If the future is already resolved,
// Wait returns its answer whatever the state of ctx.
func (r *Result[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-r.f.Done():
		return r.get()
	default:
	}
	select {
	case <-r.f.Done():
		return r.get()
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Ready reports whether the future is resolved, so that [Result.Value]
// would not wait. It never waits.
func (r *Result[T]) Ready() bool {
	return r.f.Resolved()
}

// Done returns a channel that is closed when the future is resolved, for
// use in a select. It never waits and returns the same channel on every
// call.
func (r *Result[T]) Done() <-chan struct{} {
	return r.f.Done()
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
