// Package strategy decides when child processes start.
//
// A [Strategy] is the policy half of a dispatcher: the dispatcher keeps the
// queue of tasks and the children, and calls the strategy's Step method on
// its single manager goroutine after every change (a task queued, a child
// exited, a timer the strategy asked for fired). The strategy looks at the
// [Pool] it is handed and starts as many children as it likes through
// [Pool.Spawn]. It is a port of the spawn strategies of the Ruby gem
// procrastinate (Simple, Throttled and Default).
//
// # The strategies
//
// [Simple] starts a child for every queued task at once, with no limit.
// [Throttled] never has more than n children alive. [Default] is Throttled
// with a limit of three children per CPU, the gem's default;
// [DefaultWithFactor] chooses another number per CPU.
//
//	d, err := dispatcher.Start(strategy.Throttled(4))
//
// Every strategy of this package has a String method for logs.
//
// # How children are used
//
// Options set the [Policy] of a strategy, each the field of its name: by
// default a child serves one task and exits, the gem's model, which
// isolates best; [Reuse] lets a child serve more, [Spares] keeps children
// started before work comes, and [MaxAge], [MaxRSS], [Spread] and
// [Pipeline] tune reuse.
//
//	d, err := dispatcher.Start(strategy.Throttled(4, strategy.Reuse(strategy.Unlimited), strategy.Spares(2)))
//
// # Misconfiguration
//
// The constructors never panic and never return an error. A strategy that
// cannot work, such as Throttled(0), has a Validate method that returns an
// error that starts with "strategy: ", the dispatcher refuses to start
// with it, and its Step starts nothing.
//
// # Writing a strategy
//
// Any type with the methods Step(Pool) and Policy() Policy is a strategy
// (see [Strategy] for the two optional ones).
// Step runs on the dispatcher's goroutine, so it must not block and it
// must not keep the Pool past its return; state of its own (the times of
// its recent starts, say) needs no lock, because Step is never called
// twice at once by one dispatcher. A strategy that waits for something
// other than a change in the pool (a clock, the load of the machine) calls
// [Pool.After] to be asked again. Policy says how the children are used
// (reuse, spares; the zero [Policy] is a fresh process per task); a
// strategy that wraps another returns the wrapped one's. The dispatcher
// keeps the spares a policy asks for, by asking the strategy for them as
// for queued tasks (see [Pool.Queued]). The examples show a rate limit and
// a load-average bound.
package strategy
