package strategy

import (
	"fmt"
	"math"
	"runtime"
	"time"
)

// Pool is the dispatcher as a strategy sees it. Its methods are only valid
// during the Step call that received it, on the dispatcher's goroutine; a
// strategy must not keep it.
type Pool interface {
	// Queued reports the number of tasks waiting for a child. While none
	// waits and fewer children are idle than the strategy's
	// Policy.Spares, it reports Spares instead: spares are children for
	// tasks to come, which the strategy starts as it starts children for
	// queued tasks, within its own limits.
	Queued() int
	// Children reports the children alive: started and not yet reaped. A
	// child that exited is counted until the dispatcher has heard of its
	// exit.
	Children() int
	// Idle reports the children alive and waiting for a task (spares).
	// With a fresh process per task these are children started while the
	// queue was empty.
	Idle() int
	// Spawn starts one child now. The child takes the next queued task as
	// it starts, or waits as a spare if none is queued. An error means the
	// child could not be started (the dispatcher reports it), or that the
	// dispatcher starts no more now; a strategy should stop spawning for
	// this step.
	Spawn() error
	// After asks for another Step no later than d from now, for strategies
	// that pace their starts. The earliest request wins. Requests last one
	// round: the dispatcher forgets them before every Step, whatever caused
	// it, so a strategy that still waits must ask again in each Step.
	After(d time.Duration)
}

// Strategy decides when children start, and how the dispatcher uses them.
//
// A strategy may have two more methods, which the dispatcher looks for:
//
//   - Validate() error, for a strategy that can be misconfigured:
//     dispatcher.Start calls it and refuses to start with its error.
//   - RunsTasks() bool, for a strategy that starts children for work of
//     its own only (server mode, [SpawnN]): when it returns false, the
//     dispatcher fails scheduled tasks at once instead of queueing them.
type Strategy interface {
	// Step is called on the dispatcher's goroutine whenever something
	// changed. It may call p.Spawn any number of times. It must not block,
	// and must not keep p.
	Step(p Pool)
	// Policy returns how the dispatcher treats the children the strategy
	// starts (see Policy); the zero Policy is a fresh process per task.
	// The dispatcher reads it once, in dispatcher.Start. A strategy that
	// wraps another returns the wrapped one's, unless it means to change
	// it: embedding the wrapped Strategy does that.
	Policy() Policy
}

// Simple returns a strategy that starts a child for every queued task at
// once, with no limit on the children alive (the gem's Simple). Tasks that
// idle children will take (Pool.Idle) start no child of their own. Its
// String method returns "Simple"; its Validate method checks the options.
func Simple(opts ...Option) Strategy {
	return &simple{policy: newPolicy(opts)}
}

type simple struct{ policy Policy }

// Step starts one child for each queued task that no idle child will take
// (spares among them, see Pool.Queued).
func (s *simple) Step(p Pool) {
	spawn(p, math.MaxInt)
}

func (s *simple) String() string { return "Simple" + s.policy.suffix() }

// Policy returns the policy that the strategy's options set.
func (s *simple) Policy() Policy { return s.policy }

// Validate reports an error for options out of range.
func (s *simple) Validate() error { return s.policy.Validate() }

// Throttled returns a strategy that never has more than n children alive
// (the gem's Throttled). On each Step it starts one child for each queued
// task that no idle child will take, while fewer than n children are
// alive; the tasks left over wait until a child exits. Idle children count
// towards n. Its String method returns "Throttled(n)".
//
// An n below 1 gives a strategy whose Validate method returns an error
// ("strategy: Throttled(0): the limit must be at least 1"), so that
// dispatcher.Start refuses it; its Step starts nothing.
func Throttled(n int, opts ...Option) Strategy {
	return &throttled{n: n, policy: newPolicy(opts)}
}

// Default returns Throttled(runtime.NumCPU() * 3): the gem's Default, which
// allowed the number of cores times a workload factor of 3. The number of
// CPUs is read once, when Default is called; it is the number this process
// may run on (its affinity mask), which may be fewer than the machine has.
// Its String method returns, say, "Default(8 cpus × 3 = 24)".
func Default(opts ...Option) Strategy {
	return DefaultWithFactor(defaultFactor, opts...)
}

// defaultFactor is the gem's workload_factor.
const defaultFactor = 3

// DefaultWithFactor returns Throttled(runtime.NumCPU() * f), for work that
// waits more (a larger f) or less (f = 1 for pure CPU work) than the
// default assumes. An f below 1 gives a strategy whose Validate method
// returns an error and whose Step starts nothing, as with [Throttled].
func DefaultWithFactor(f int, opts ...Option) Strategy {
	cpus := runtime.NumCPU()
	n := math.MaxInt
	if f <= math.MaxInt/cpus {
		n = cpus * f
	}
	return &throttled{n: n, cpus: cpus, factor: f, policy: newPolicy(opts)}
}

// throttled is Throttled, Default and DefaultWithFactor. cpus is zero for
// Throttled.
type throttled struct {
	n      int
	cpus   int
	factor int
	policy Policy
}

// Step starts one child for each queued task that no idle child will take
// (spares among them, see Pool.Queued), while fewer than n children are
// alive. An invalid throttled starts nothing.
func (t *throttled) Step(p Pool) {
	if t.Validate() != nil {
		return
	}
	spawn(p, t.n)
}

// Policy returns the policy that the strategy's options set.
func (t *throttled) Policy() Policy { return t.policy }

// Validate reports an error if the limit or the factor is below 1.
func (t *throttled) Validate() error {
	if err := t.policy.Validate(); err != nil {
		return err
	}
	switch {
	case t.cpus == 0 && t.n < 1:
		return fmt.Errorf("strategy: Throttled(%d): the limit must be at least 1", t.n)
	case t.cpus != 0 && t.factor < 1:
		return fmt.Errorf("strategy: DefaultWithFactor(%d): the factor must be at least 1", t.factor)
	}
	return nil
}

func (t *throttled) String() string {
	if t.cpus == 0 {
		return fmt.Sprintf("Throttled(%d)", t.n) + t.policy.suffix()
	}
	return fmt.Sprintf("Default(%d cpus × %d = %d)", t.cpus, t.factor, t.n) + t.policy.suffix()
}

// spawn starts one child for each queued task that no idle child will take,
// while fewer than n children are alive, and stops at the first error.
// It calls Spawn at most as many times as there were tasks queued when it
// began, so that a Pool whose Spawn does not take a task cannot make it
// loop forever.
func spawn(p Pool, n int) {
	for budget := p.Queued(); budget > 0; budget-- {
		if p.Queued() <= p.Idle() || p.Children() >= n {
			break
		}
		if err := p.Spawn(); err != nil {
			return
		}
	}
}
