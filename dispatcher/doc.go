// Package dispatcher runs scheduled tasks in child processes: it keeps the
// queue, asks its strategy when to start a child, hands each child its
// invocation, and resolves every future exactly once. It is the Go form of
// the Ruby gem procrastinate's Scheduler.
//
// # Life of a dispatcher
//
// [Start] returns a running dispatcher with a goroutine of its own that
// owns all its state; [Dispatcher.Submit] (reached through
// task.Def.Schedule: a Dispatcher is a task.Scheduler), [Dispatcher.Join],
// [Dispatcher.Shutdown] and [Dispatcher.Close] talk to it through a queue
// and a wakeup, and never wait for a child. Several dispatchers live side
// by side in one process.
//
// [Dispatcher.Shutdown] takes no more work and lets what is queued and
// running finish; [Dispatcher.Close] resolves what is queued with
// [ErrClosed] and ends the running children with SIGTERM, then SIGKILL
// after a grace period. After either returns, nothing of the dispatcher is
// left: no child, zombie, fd or goroutine. The one exception is a
// goroutine still blocked in the Write of a stderr writer that cannot be
// given a deadline (a writer of your own that blocks; see [WithStderr]);
// it ends when that Write returns.
//
// # Seeing the work
//
// [Dispatcher.Stats] returns a snapshot of counters that the dispatcher's
// goroutine keeps as it goes (calls queued, running and done by
// [Outcome], children started and exited by [ExitReason], histograms of
// queue waits and run times), and never waits on that goroutine.
// [Dispatcher.Subscribe] delivers [Event] values as calls and children
// come and go, on a channel that never holds the dispatcher up: what does
// not fit is dropped and counted. Package metrics serves the Stats to
// Prometheus. The guide is [docs/observability.md].
//
// # What a future resolves to
//
// Every future resolves exactly once, to the task's value or to an error
// that says how the task ended. What it resolves to, for every way a task
// can end, is listed in [docs/failure.md].
//
// [docs/observability.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/observability.md
// [docs/failure.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/failure.md
package dispatcher
