package strategy

import (
	"fmt"
	"strings"
	"time"
)

// Policy says how the dispatcher treats the children a strategy starts:
// how many tasks each serves, when it is replaced, and how many wait as
// spares. A strategy returns it from its Policy method; the package's
// strategies return what their options set, each option setting the field
// of its name. The zero Policy is the gem's model, which stays the
// default: a fresh process for every task, no spares.
type Policy struct {
	// Reuse is how many tasks a child serves, one after another, before
	// it exits: 0 or 1 is a fresh process per task, and [Unlimited] means
	// no limit.
	Reuse int
	// MaxAge, when not zero, retires a child older than this: it finishes
	// the task it has and takes no other.
	MaxAge time.Duration
	// MaxRSS, when not zero, retires a child whose peak resident set
	// passed this many bytes, after the task during which it did.
	MaxRSS int64
	// Spread varies each child's Reuse and MaxAge at random by up to
	// this fraction (0.1: ±10%), so that children started together are not
	// all replaced together.
	Spread float64
	// Spares is how many children the dispatcher keeps started and idle,
	// waiting for their first task, within the strategy's limits: it asks
	// the strategy for them as for queued tasks (see Pool.Queued).
	Spares int
	// Pipeline is how many tasks a reused child may be handed before it
	// has answered the first (1 when 0): they wait in the child's pipe
	// while it works, so it never waits on the parent. A call stopped by
	// its context or timeout is withdrawn from its child: if it has not
	// begun it never runs; if it runs, the child stops it, answers and
	// exits, and the calls behind it go back to the queue. When a child
	// dies, the task it was running takes the blame and the ones behind it
	// go back to the queue.
	Pipeline int
}

// Unlimited is the Reuse of a child that serves tasks until it is retired
// for another reason (MaxAge, MaxRSS), it dies, or the dispatcher ends.
const Unlimited = -1

// Option sets a field of the Policy of a strategy of this package; each
// has the name of the field it sets.
type Option interface{ apply(*Policy) }

type optionFunc func(*Policy)

func (f optionFunc) apply(p *Policy) { f(p) }

// Reuse lets each child serve up to n tasks before it exits (see
// Policy.Reuse): 0 or 1 is a fresh process per task, [Unlimited] no
// limit. A child that crashes takes only the task it was running with it;
// the next tasks go to other children. Reuse trades isolation (a task sees
// what earlier tasks in the same child left in memory) for throughput: a
// task's start costs a pipe write instead of an exec.
func Reuse(n int) Option { return optionFunc(func(p *Policy) { p.Reuse = n }) }

// MaxAge retires children older than d (see Policy.MaxAge).
func MaxAge(d time.Duration) Option { return optionFunc(func(p *Policy) { p.MaxAge = d }) }

// MaxRSS retires children whose peak resident set passed bytes (see
// Policy.MaxRSS).
func MaxRSS(bytes int64) Option { return optionFunc(func(p *Policy) { p.MaxRSS = bytes }) }

// Spread varies Reuse and MaxAge per child by up to fraction f (see
// Policy.Spread).
func Spread(f float64) Option { return optionFunc(func(p *Policy) { p.Spread = f }) }

// Spares keeps k children started and idle, waiting for work (see
// Policy.Spares). With a fresh process per task each spare serves one task
// and a new spare is started in its place.
func Spares(k int) Option { return optionFunc(func(p *Policy) { p.Spares = k }) }

// maxPipeline is the deepest Pipeline allowed. Tasks pipelined to a child
// wait in its invocation pipe, behind whatever the child is running, and
// go back to the queue if it dies; deeper, more of them would wait on one
// child's slow task while others sit idle.
const maxPipeline = 64

// Pipeline lets each reused child have up to k tasks in flight (see
// Policy.Pipeline), k at most 64. It matters only with Reuse.
func Pipeline(k int) Option { return optionFunc(func(p *Policy) { p.Pipeline = k }) }

func newPolicy(opts []Option) Policy {
	var p Policy
	for _, o := range opts {
		o.apply(&p)
	}
	return p
}

// Validate reports an error for a field out of range, which names the
// option that sets the field. dispatcher.Start refuses a strategy whose
// policy it rejects.
func (p Policy) Validate() error {
	switch {
	case p.Reuse < Unlimited:
		return fmt.Errorf("strategy: Reuse(%d): the number of tasks must not be negative (0 and 1 are one task), or Unlimited", p.Reuse)
	case p.MaxAge < 0:
		return fmt.Errorf("strategy: MaxAge(%v): the age must not be negative", p.MaxAge)
	case p.MaxRSS < 0:
		return fmt.Errorf("strategy: MaxRSS(%d): the size must not be negative", p.MaxRSS)
	case p.Spread < 0 || p.Spread >= 1:
		return fmt.Errorf("strategy: Spread(%v): the fraction must be at least 0 and below 1", p.Spread)
	case p.Pipeline < 0 || p.Pipeline > maxPipeline:
		return fmt.Errorf("strategy: Pipeline(%d): the depth must be from 0 to %d", p.Pipeline, maxPipeline)
	case p.Spares < 0:
		return fmt.Errorf("strategy: Spares(%d): the number must not be negative", p.Spares)
	}
	return nil
}

// suffix describes the non-default parts of p for String methods.
func (p Policy) suffix() string {
	var parts []string
	switch {
	case p.Reuse == Unlimited:
		parts = append(parts, "reuse")
	case p.Reuse > 1:
		parts = append(parts, fmt.Sprintf("reuse %d", p.Reuse))
	}
	if p.MaxAge > 0 {
		parts = append(parts, fmt.Sprintf("max age %v", p.MaxAge))
	}
	if p.MaxRSS > 0 {
		parts = append(parts, fmt.Sprintf("max rss %d", p.MaxRSS))
	}
	if p.Spread > 0 {
		parts = append(parts, fmt.Sprintf("spread %v", p.Spread))
	}
	if p.Pipeline > 1 {
		parts = append(parts, fmt.Sprintf("pipeline %d", p.Pipeline))
	}
	if p.Spares > 0 {
		parts = append(parts, fmt.Sprintf("%d spares", p.Spares))
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, ", ")
}
