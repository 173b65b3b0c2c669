// Package result holds the futures that stand for work done in child
// processes, and the errors that such work ends with.
//
// # Futures
//
// [New] makes a [Result] and its [Resolver]. The dispatcher keeps the
// Resolver and resolves it exactly once, with the encoded answer
// ([Resolver.Resolve]) or with an error ([Resolver.Fail]); the caller keeps
// the Result and reads it with [Result.Value], which waits, or
// [Result.Wait], which gives up when a context ends. [Result.Ready],
// [Result.Done] and [Result.Err] never wait for the task.
//
// The answer is decoded on the goroutine of the first caller that reads it,
// never on the goroutine that resolved it: the dispatcher's manager
// goroutine does not spend its time decoding results nobody may read.
//
// # Errors
//
// A future that fails carries one of these, which callers pick out with
// errors.As:
//
//   - [*TaskError]: the task ran and failed; it returned an error or
//     panicked.
//   - [*ChildDeath]: the child process running the task ended before it
//     answered.
//
// Other packages add their own errors (a dispatcher that shut down before
// the task started, say); those come back from [Result.Value] as given to
// [Resolver.Fail].
package result
