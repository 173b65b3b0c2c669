// Package lock provides named locks shared by cooperating processes: a
// parent and the children it starts, over flock(2) on files in one private
// directory. It is the Go form of the Ruby gem procrastinate's
// Runtime#lock.
//
// # Use
//
// One process names a directory with [New] and hands its [Dir.Path] to the
// others, which use it with [At]; the first lock taken, in any of them,
// makes the directory (in this module the dispatcher names it at Start,
// passes the path in every invocation, and removes it at Shutdown or
// Close). [Create] makes a directory at once, and [Open] uses one that
// exists. Any of them then takes a lock by name:
//
//	err := dir.Do(ctx, "report", func() error {
//		return writeReport() // no other holder of "report" runs meanwhile
//	})
//
// [Dir.Lock] waits until the lock is free or ctx ends; [Dir.TryLock] takes
// it only if it is free now and returns [ErrHeld] otherwise; [Lock.Unlock]
// releases it; [Dir.Do] runs a function while holding it.
//
// # Guarantees
//
// At most one [Lock] for a name in a directory is held at a time, across
// all processes and within one: every Lock opens its own file description,
// and flock locks on separate descriptions exclude each other even in one
// process. A lock is released by [Lock.Unlock], or by the kernel when the
// holding process ends however it ends (exit, panic, SIGKILL): a crashed
// child never leaves a lock behind. Lock files are opened close-on-exec, so
// a process started while a lock is held does not inherit it.
//
// Waiters are not served in any order; under heavy contention one waiter
// may wait while others take the lock again and again.
//
// The directory must be on a local file system (os.TempDir is one). On NFS,
// Linux emulates flock with POSIX record locks, which belong to a process,
// and two Locks in one process would not exclude each other. Where there is
// no flock (Windows, AIX), Lock and TryLock fail with an error wrapping
// errors.ErrUnsupported.
//
// # Waiting
//
// [Dir.Lock] waits by polling: it tries a non-blocking flock, and while the
// lock is held it sleeps and tries again, with a pause that starts near
// 200µs and doubles up to 10ms. A blocking flock would wake sooner, but it
// cannot be cancelled: the Go runtime restarts it after signals, and closing
// the file does not wake it, so giving up when ctx ends would leave a
// goroutine, and the OS thread that it is blocked in, stuck until the lock
// came free, which may be never. Polling costs a few wake-ups a second per
// waiter and up to about 10ms of latency after a release.
//
// # Names
//
// A name is the file name of its lock file, so it must be a plain file
// name: not empty, not "." or "..", without '/' or NUL, and at most 255
// bytes. Anything else is refused with a [*NameError]. Dots, dashes, spaces
// and any UTF-8 are fine. Lock files are opened with O_NOFOLLOW: a symbolic
// link planted under a lock's name makes Lock fail and is never followed.
//
// # The directory's life
//
// A directory named by [New] is made by the first lock taken in it, with
// mode 0700, by whichever process comes first; the others use it. What
// already stands at the path is used only if it is a private directory of
// this user, checked on the directory opened without following a link, so
// that another user cannot plant one in a shared /tmp. Lock files are
// created on first use and never removed while the directory lives
// (removing a lock file on release would let two processes lock two
// different files of the same name). [Dir.Remove] deletes the directory
// and all of its files. Locks held at that moment stay held, and keep
// excluding the others who opened the same file, until they are released;
// new Lock and TryLock calls fail, since the directory is gone.
//
// A process that ends without Remove (killed, or exiting without the
// dispatcher's Shutdown) leaves its directory behind. On Linux the name
// says which process named it (PID namespace, pid and start time), and
// [RemoveStale] removes those whose process no longer runs; the
// dispatcher calls it at every Start.
package lock
