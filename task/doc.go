// Package task defines the work that child processes run: named, typed
// functions registered in every copy of the program, and the child-side
// loop that runs them.
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
// encoded argument. Arguments and results are encoded with [Gob] unless
// the definition says otherwise ([WithCodec]); Define refuses a
// type the codec can never carry, and an error in a result crosses with
// its message and the module's sentinels (see [Define]).
//
// # Scheduling
//
// [Def.Schedule] hands a call to a [Scheduler] (a *dispatcher.Dispatcher)
// and returns a *result.Result at once. An argument that cannot be encoded
// fails the future at once with the encoder's error.
//
// # In the child
//
// [Serve] is the child's loop; procrastinate.Main runs it. A task that
// returns an error or panics resolves its future with a *result.TaskError
// (with the panic's stack); a task name the child does not know is a
// TaskError too, never a hang, and so is a task that calls runtime.Goexit
// (which also ends its child).
package task
