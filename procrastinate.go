// Package procrastinate runs work in child processes: isolation that
// goroutines cannot give (a task that panics, calls os.Exit, crashes in cgo
// or leaks memory harms only its own process), with futures for the
// results and a pluggable strategy that decides when processes start.
//
// A program defines tasks with task.Define, calls [Main] first thing in
// main (and in TestMain), starts a dispatcher with dispatcher.Start and
// schedules work on it:
//
//	var square = task.Define("example.com/calc.square", func(ctx context.Context, n int) (int, error) {
//		return n * n, nil
//	})
//
//	func main() {
//		procrastinate.Main()
//		d, err := dispatcher.Start(strategy.Throttled(4))
//		if err != nil { ... }
//		defer d.Close() // a panic or an early return: drop the queue, stop the children
//		v, err := square.Schedule(d, 7).Value()
//		...
//		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
//		defer cancel()
//		err = d.Shutdown(ctx) // the end of the work: let the rest finish, within a deadline
//	}
//
// Task names are global to the program: "importpath.name" keeps those of
// two packages apart.
//
// Small programs may use the default dispatcher instead: [Schedule], [Join]
// and [Reset] start it on first use with strategy.Default.
//
// # Why Main
//
// Go cannot fork and go on running Go code in the child, so a child is a
// fresh start of the same executable, with the same arguments. [Main]
// recognises such a start, runs the task it was started for, and exits; in
// the parent it returns at once. Anything main does before Main runs in
// every child too.
package procrastinate

import (
	"context"
	"sync"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/entry"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// Main is the child's entry. Call it first thing in main, and in TestMain
// of tests that schedule tasks. In a child process it runs the tasks the
// parent sends and exits, never returning; in any other process it returns
// at once.
//
// A child gets the parent's arguments (os.Args) and environment, so code
// that runs before Main (flag checks, say) sees what the parent saw. A
// child that never reaches Main runs the program's main instead of its
// task: there, dispatcher.Start and the default dispatcher refuse to start
// with procman.ErrNoMain, and the parent's future fails with a
// *result.ChildDeath that wraps it.
func Main() {
	procman.Serve(entry.Serve)
}

// The default dispatcher: the one piece of global state in this package,
// for small programs that want the gem's implicit use.
var (
	defaultMu sync.Mutex
	defaultD  *dispatcher.Dispatcher
)

// Default returns the default dispatcher, starting it with
// strategy.Default on first use (and again after Reset).
func Default() (*dispatcher.Dispatcher, error) {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultD == nil {
		d, err := dispatcher.Start(strategy.Default())
		if err != nil {
			return nil, err
		}
		defaultD = d
	}
	return defaultD, nil
}

// Schedule schedules def with arg and opts on the default dispatcher, as
// def.Schedule does, and returns its future. If the default dispatcher
// cannot start, the future resolves at once with the reason.
func Schedule[A, R any](def *task.Def[A, R], arg A, opts ...task.CallOption) *result.Result[R] {
	d, err := Default()
	if err != nil {
		return def.Schedule(refusing{err}, arg, opts...)
	}
	return def.Schedule(d, arg, opts...)
}

// refusing is a task.Scheduler that fails every call with err.
type refusing struct{ err error }

func (r refusing) Submit(c *task.Call) { c.Fail(r.err) }

// Join waits until every task scheduled on the default dispatcher so far
// has resolved, as dispatcher.Dispatcher.Join does: it returns nil, or
// ctx.Err() when ctx ends first. It returns nil at once when the default
// dispatcher was never started.
func Join(ctx context.Context) error {
	defaultMu.Lock()
	d := defaultD
	defaultMu.Unlock()
	if d == nil {
		return nil
	}
	return d.Join(ctx)
}

// Reset shuts the default dispatcher down, letting its work finish, and
// forgets it: the next Schedule starts a new one.
func Reset() {
	defaultMu.Lock()
	d := defaultD
	defaultD = nil
	defaultMu.Unlock()
	if d != nil {
		_ = d.Shutdown(context.Background())
	}
}
