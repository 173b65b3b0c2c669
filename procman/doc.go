// Package procman starts child processes, feeds them invocations, reads
// their replies and notes, reaps them and kills them. It decides nothing:
// when a child starts, and what it is given to do, is the caller's
// business. It is the Go form of the Ruby gem procrastinate's
// ProcessManager: "only low level unixy manipulation here, no strategy".
// It runs children on Linux 5.4 or later; elsewhere [Manager.Setup]
// returns [ErrUnsupported].
//
// # Children
//
// A child is a fresh start of the running executable, with the parent's
// arguments (os.Args) and a cookie in its environment, not a fork: Go
// cannot go on running Go code in a forked child. The program must call
// [Serve] first thing in main (and in TestMain); in a child, Serve strips
// the cookie, hands a [Child] to the function it was given, and exits with
// what that function returns. In the parent it returns at once.
//
// Each child holds fds 0 (/dev/null), 1 and 2 (the parent's, or what
// [Spec] names) and three pipes to its parent: invocations in, replies and
// notes out, and stop requests in. It leads its own process group, so a
// signal from [Manager.KillProcesses] or [Process.Signal] reaches what it
// started. When its parent dies, its pipes end without the goodbye that
// [Process.CloseInput] sends first, and the child kills its own group at
// once (see [Child]).
//
// # Messages
//
// Three kinds of message cross the pipes. An invocation goes from parent
// to child ([Process.Send], or [Spec.Invocation] for the first); the
// manager numbers the invocations it sends to one child from 1, and
// [Child.Next] returns each with its number. A reply goes from child to
// parent and ends the oldest invocation in flight ([Child.Reply],
// [Handler.Reply]): the n-th reply answers the n-th invocation. A note
// goes from child to parent about the invocation in flight ([Child.Note],
// [Handler.Note]), named by its number, so that a note for an invocation
// already answered is dropped and never taken for one about the next.
// Replies and notes carry a [Kind], the caller's label, which the manager
// passes on without reading it; payloads are bytes the manager never
// looks into. A reply or a note for an invocation not yet due, or never
// sent, or bytes that are not a message, are a [ProtocolError]: the child
// is killed, and no other child is affected.
//
// # The manager
//
// A [Manager] waits for all its children at once, in [Manager.Step]: on
// Linux an epoll set holds a pidfd and the pipes of every child, and an
// eventfd for [Manager.Wakeup]. Step never polls: it wakes for a child's
// message or exit, a Wakeup, or the deadline the caller set with
// [Manager.SetDeadline]. Then it reads every ready message, reaps every
// exited child by its pidfd, and calls each child's [Handler]. Nothing
// here waits on "any child", so os/exec in the same program keeps its
// exit statuses, and several managers live side by side in one process.
//
// On macOS, FreeBSD and the other Unix systems, and on Linux when the
// program is built with the procrastinate_portable tag, the manager runs
// on POSIX primitives instead: it learns of exits by SIGCHLD and reaps
// each of its children with wait4 on the child's own pid, watches its
// pipes through the Go runtime's poller, and a Wakeup is a channel send.
// A reply or a note of 1 MiB or more goes there in a temporary file,
// unlinked at once, whose descriptor the child sends on a socket (fd 6)
// that it holds beside its pipes. What the backend gives up (descendants
// that left a child's process group, a parent-death signal on macOS) is
// listed in docs/procman.md.
//
// A child moves through the states of [State]: new, running, stopped (its
// exit was seen), removable (its pipe was read to the end and its handler
// told). [Handler.Exited] comes after every reply and note the child
// wrote, so a child that replied and exited is never reported dead before
// its reply.
//
// # Ownership
//
// A Manager belongs to one goroutine: Setup, Step, CreateProcess,
// KillProcesses, WaitForAllChildren, Teardown and the methods of [Process]
// must all be called from it (handlers run on it too, and may call them).
// Only [Manager.Wakeup] is safe from any goroutine. Concurrent use is
// detected where it is cheap, and panics.
package procman
