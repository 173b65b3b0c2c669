// Package task defines the work that child processes run: named, typed
// functions registered in every copy of the program, the options of a
// call, and what a task may do in its child.
//
// # Defining a task
//
//	var square = task.Define("example.com/calc.square", func(ctx context.Context, n int) (int, error) {
//		return n * n, nil
//	})
//
// Define runs at package level, so that the parent and every child (a fresh
// start of the same executable) register the same names. Names are global
// to the program: "importpath.name" keeps those of two libraries apart. A
// closure cannot cross a process boundary: a task is its name and its
// encoded argument. Arguments and results are encoded with [JSON] unless
// the definition says otherwise ([WithCodec]; the package gobcodec offers
// encoding/gob); Define refuses a type the codec can never carry, and an
// error in a result crosses with its message and the module's sentinels
// (see [Define]).
//
// # Scheduling
//
// [Def.Schedule] hands a [Call] to a [Scheduler] (a *dispatcher.Dispatcher)
// and returns a *result.Result at once. Options set up the call:
// [WithContext], [WithTimeout], [WithRetries], [WithActivityTimeout] and
// [WithProcess]. An argument that cannot be encoded fails the future at
// once with the encoder's error. What a future resolves to is listed in
// [docs/failure.md].
//
// A Scheduler of your own (one that runs calls on other machines, say)
// reads the Call's fields and resolves it with [Call.Resolve] or
// [Call.Fail], after handing its future what the call reports with
// [Call.ReportProgress] and [Call.ReportEnd]; on the other side, [Raw] schedules a call it received as
// bytes by the task's name.
//
// # In the child
//
// A task's context ends when its call is cancelled or its deadline
// passes, and when the dispatcher stops the child. [Heartbeat] tells the
// parent that a task with an activity timeout is alive; [Progress]
// reports how far it is, to its caller's result.Result.Progress;
// [Logger] logs to the dispatcher's logger; [Lock], [TryLock]
// and [Synchronize] take the locks its dispatcher shares with the parent
// and its other children. A task that returns an error or panics resolves
// its future with a *result.TaskError (with the panic's stack).
// procrastinate.Main runs the child's side ([Serve]).
//
// [docs/failure.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/failure.md
package task
