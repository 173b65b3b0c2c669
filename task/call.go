package task

import (
	"context"
	"slices"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/future"
)

// Scheduler takes calls to run in child processes. *dispatcher.Dispatcher
// is one; a scheduler of your own (one that sends calls to other machines,
// say) implements it too.
//
// Submit must not wait for children, and it must resolve the call exactly
// once, with [Call.Resolve] or [Call.Fail]: at once, with an error, when
// it takes no more work.
type Scheduler interface {
	Submit(c *Call)
}

// Call is one scheduled run of a task, as [Def.Schedule] hands it to a
// [Scheduler]: the task's name, its encoded argument, the settings that
// the call options set, and the writing side of its future. The
// scheduler owns it once Submit is called. Calls come from Schedule
// only: the zero Call has no future, and its Resolve and Fail panic.
type Call struct {
	// Task is the name the task was defined under.
	Task string
	// Arg is the encoded argument, as the task's codec made it.
	Arg []byte

	// Context, when not nil, is the context of [WithContext]: when it
	// ends, a queued call never starts and a running one is stopped.
	Context context.Context
	// Deadline, when not zero, is when the call is stopped
	// ([WithTimeout]); the earlier of it and Context's deadline holds.
	Deadline time.Time
	// Retries is how many more times the task is run when its child dies
	// before answering; RetryDelay is the pause before the first retry,
	// doubled for each further one ([WithRetries]).
	Retries    int
	RetryDelay time.Duration
	// Process, when not nil, sets up the child that runs the call, which
	// is then started for it alone ([WithProcess]).
	Process *Process
	// ActivityTimeout, when not zero, is how long the task may go without
	// a [Heartbeat] before its child is killed ([WithActivityTimeout]).
	ActivityTimeout time.Duration

	f *future.Future
}

// Resolve resolves the call's future with answer, the encoded result as
// the child sent it, and reports whether this call did it: false when the
// future was resolved already, which it then leaves as it was. It takes
// ownership of answer. The answer is decoded later, on the goroutine of
// the future's first reader.
func (c *Call) Resolve(answer []byte) bool {
	return c.f.Resolve(answer)
}

// Fail resolves the call's future with err, which its readers get as it
// is, and reports whether this call did it: false when the future was
// resolved already, which it then leaves as it was. It panics if err is
// nil.
func (c *Call) Fail(err error) bool {
	if err == nil {
		panic("task: Call.Fail with a nil error")
	}
	return c.f.Fail(err)
}

// Process sets up the child process that runs one call ([WithProcess]).
// The zero Process is the parent's directory and environment, no limits,
// and the nice level the child inherits.
type Process struct {
	// Dir is the child's working directory; empty means the parent's.
	Dir string
	// Env holds extra KEY=VALUE entries for the child's environment; one
	// for a variable that the parent has replaces it. An entry that is not
	// KEY=VALUE, holds a NUL byte, or sets one of the library's own
	// variables (PROCRASTINATE_CHILD, PROCRASTINATE_CPU_LIMIT,
	// PROCRASTINATE_NICE) fails the call: at once when it is scheduled,
	// as its worker starts in server mode.
	Env []string
	// Nice is the child's nice level, on every thread of the child: above
	// 0 lowers its priority, below 0 needs privilege, and 0 leaves the
	// level it inherits.
	Nice int
	// AddressSpace is RLIMIT_AS in bytes; 0 means no limit. The Go runtime
	// reserves address space generously: a fresh Go child maps 1.2 to 1.6
	// GiB before its task runs (about 2 GiB under -race; see
	// docs/failure.md), so allow that much and what the task needs.
	AddressSpace uint64
	// CPUTime is RLIMIT_CPU, rounded up to whole seconds; 0 means no limit.
	// A child over it gets SIGXCPU.
	CPUTime time.Duration
}

// CallOption configures one call to [Def.Schedule]. The zero set of
// options runs the task once, with no deadline, in a child set up as the
// dispatcher's strategy says.
type CallOption interface{ applyCall(*Call) }

type callOptionFunc func(*Call)

func (f callOptionFunc) applyCall(c *Call) { f(c) }

// WithContext ties the call to ctx. When ctx ends before the task answers,
// a queued call never starts and a running one is stopped with the
// dispatcher's termination sequence (SIGTERM, a grace period, SIGKILL);
// either way the future resolves with a *result.CancelError that wraps
// ctx.Err(). Inside the child, the task's own context ends on SIGTERM
// (the dispatcher's termination signal, which the child catches for such
// a call). A call with a context is pipelined like any other
// (strategy.Pipeline): stopping it stops nothing else, and when it waits
// in a child behind another call, it never runs.
func WithContext(ctx context.Context) CallOption {
	return callOptionFunc(func(c *Call) { c.Context = ctx })
}

// WithTimeout stops the call d after Schedule, as WithContext does with a
// context whose deadline passed. The task's context in the child carries
// the same deadline.
func WithTimeout(d time.Duration) CallOption {
	return callOptionFunc(func(c *Call) { c.Deadline = time.Now().Add(d) })
}

// WithRetries runs the task again, up to n more times, when its child dies
// before answering (a crash, a signal, os.Exit); not when the task returns
// an error or panics, and not when it is cancelled. The first retry waits
// delay, each further one twice as long as the one before. When every try
// died, the future resolves with a *result.RetryError listing each death.
func WithRetries(n int, delay time.Duration) CallOption {
	return callOptionFunc(func(c *Call) { c.Retries, c.RetryDelay = n, delay })
}

// WithActivityTimeout kills the call's child when the task sends no
// [Heartbeat] for longer than d (the gem's activity check: a lazy worker
// is a hung one). The future then resolves with a *result.ChildDeath
// whose cause is dispatcher.ErrInactive. The time runs from the call's
// start in its child, not from its place in a pipeline.
func WithActivityTimeout(d time.Duration) CallOption {
	return callOptionFunc(func(c *Call) { c.ActivityTimeout = d })
}

// WithProcess runs the call in a child started for it alone, set up as p
// says, whatever the strategy's reuse and spares.
func WithProcess(p Process) CallOption {
	p.Env = slices.Clone(p.Env) // the caller may reuse its slice
	return callOptionFunc(func(c *Call) { c.Process = &p })
}
