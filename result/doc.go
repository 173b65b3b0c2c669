// Package result holds the futures that stand for work done in child
// processes, and the errors that such work ends with.
//
// # Futures
//
// task.Def.Schedule returns a [Result] at once and hands the call to a
// scheduler (a dispatcher), which resolves the future exactly once: with
// the child's answer, or with an error. [Result.Value] waits for it;
// [Result.Wait] gives up when a context ends; [Result.Ready],
// [Result.Done] and [Result.Err] never wait for the task.
//
// The answer is decoded on the goroutine of the first caller that reads
// it, never on the goroutine that resolved it: the dispatcher's manager
// goroutine does not spend its time decoding results nobody may read.
//
// # Errors
//
// The error types of this package, which callers pick out with
// errors.As, are [*TaskError], [*ChildDeath], [*CancelError] and
// [*RetryError]; other packages add errors of their own (a dispatcher that
// shut down before the task started, say). Which error a future fails
// with, for every way a task can end, is listed in [docs/failure.md].
//
// [docs/failure.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/failure.md
package result
