// Package command runs external programs as tasks: each [Cmd] is started
// by the child process that runs its call, in a process group of its own,
// and everything it started ends with its call.
//
//	r := command.Schedule(d, command.Cmd{Path: "convert", Args: []string{"a.png", "a.jpg"}},
//		task.WithTimeout(time.Minute))
//	res, err := r.Value() // a Result; a non-zero exit is an *ExitError carrying it
//
// # Modes
//
// The strategy of the dispatcher decides how commands start, as for any
// task. Under a reused child (strategy.Reuse, strategy.Pipeline) a Go
// worker forks and execs each command and reaps it by its own pid: the
// fastest start, and reuse costs no isolation here, since the worker
// keeps nothing of a command once it ended. Under a fresh child per call
// (the default, or a call with task.WithLimits) each command pays for one
// more exec and Go runtime start, and gets a child of its own. [Cmd.Limits]
// bound the command itself in either mode.
//
// # What ends with a call
//
// When the command exits, its timeout passes or its call is cancelled, the
// child kills the command's process group, then every process it adopted
// while the command ran (the child is a subreaper on Linux and FreeBSD, so
// a daemon that left the group after setsid and a double fork is its child
// by then), and reaps each by its own pid. macOS has no subreaper: there,
// such a daemon outlives the call (see docs/commands.md). It never waits on any pid (waitpid(-1)): os/exec in
// the same program keeps its exit statuses. A child that runs commands
// should run only commands: what another task left running in the same
// reused child ends with the next command's call. When the child itself
// ends or is killed by the dispatcher, it takes its descendants with it
// (see docs/failure.md).
package command
