// Package procman starts child processes, watches them, reads what they
// send, reaps them and kills them. It decides nothing: when a child starts,
// and what it is given to do, is the caller's business (the dispatcher's, in
// this module). It is the Go form of the Ruby gem procrastinate's
// ProcessManager: "only low level unixy manipulation here, no strategy".
//
// # Children
//
// A child is a fresh start of the running executable, with the parent's
// arguments (os.Args) and a cookie in its environment, not a fork: Go
// cannot go on running Go code in a forked child.
// The program must call [Serve] (through procrastinate.Main) first thing in
// main and in TestMain; in a child, Serve strips the cookie from the
// environment, hands the invocation pipe to the code that runs tasks, and
// exits with what it returns.
//
// Each child holds fds 0 (/dev/null), 1 and 2 (the parent's, or what
// [Spec] names) and three pipes: invocations come in on fd 3, frames go out
// on fd 4, and the parent's stop frames come in on fd 5, the control pipe.
// Nothing else crosses. The goroutine that runs tasks reads the invocation
// pipe itself, so that an invocation wakes nothing else; a goroutine that
// does nothing but wait on the control pipe sees a stop while a task runs.
// The child leads its own process group, so a signal from
// [Manager.KillProcesses] or [Process.Signal] reaches what it started, and
// when the child exits whatever it left in its group is killed. The control
// pipe is the child's lifeline: when the parent dies the pipe reaches end
// of file, without the goodbye that [Process.CloseInput] sends first, and
// the child kills its own group at once (see [Child]). The child also asks
// the kernel for [ParentDeathSignal] when its parent dies, and catches
// SIGHUP, so that it dies with its parent when its task closed every fd,
// and when it is stopped as its parent dies.
//
// # The manager
//
// A [Manager] holds one epoll set with a pidfd and a message pipe for every
// child and an eventfd for [Manager.Wakeup]. [Manager.Step] waits with no
// polling timeout (it wakes at a deadline only when the caller set one
// with [Manager.SetDeadline]): its thread blocked in epoll_wait, or, when
// the owner said it is idle ([Manager.SetIdle]), its goroutine parked in
// the Go runtime's poller, where a Wakeup reaches it without a system
// call. Then it reads every ready message,
// reaps every exited child with waitid on its pidfd, and delivers what it
// found to each child's [Handler]. Nothing here waits on "any child", so
// os/exec in the same program keeps its exit statuses, and several managers
// live side by side in one process.
//
// On macOS, FreeBSD and the other Unix systems, and on Linux when the
// program is built with the procrastinate_portable tag, the manager runs
// on POSIX primitives instead: it learns of exits by SIGCHLD and reaps
// each of its children with wait4 on the child's own pid, watches its
// pipes through the Go runtime's poller, and a Wakeup is a channel send.
// What it gives up (descendants that left a child's process group, a
// parent-death signal on macOS) is listed in docs/procman.md.
//
// A child moves through the states of [State]: new, running, stopped (its
// exit was seen), removable (its message pipe was read to the end and its
// handler told). [Handler.Exited] comes only after every frame the child
// wrote has been delivered to [Handler.Message], so a child that answered
// and exited is never reported dead before its answer.
//
// Answers are bound to invocations: the manager numbers the invocations
// it sends to a child, the child stamps each answer, failure and progress
// frame with the number of the invocation it belongs to, and the manager
// delivers such a frame only for the invocation the child runs. A second
// answer is dropped; an answer for an invocation not yet due, or never
// sent, is a [ProtocolError], and the child is killed (see
// [Handler.Message]).
//
// # Ownership
//
// A Manager belongs to one goroutine: Setup, Step, CreateProcess,
// KillProcesses, WaitForAllChildren, Teardown and the methods of [Process]
// must all be called from it (handlers run on it too, and may call them).
// Only [Manager.Wakeup] is safe from any goroutine. Concurrent use is
// detected where it is cheap, and panics.
package procman
