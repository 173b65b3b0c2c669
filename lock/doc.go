// Package lock holds named locks shared by a dispatcher and the children
// it starts: the Go form of the Ruby gem procrastinate's Runtime#lock. A
// [Lock] is taken in the parent with dispatcher.Dispatcher.Lock or
// TryLock, and in a task with task.Lock, task.TryLock or task.Synchronize:
//
//	err := task.Synchronize(ctx, "ledger", func() error {
//		return appendToLedger(entry) // no other holder of "ledger" runs meanwhile
//	})
//
// [Lock.Unlock] releases a lock; a TryLock that finds it held returns
// [ErrHeld]; a name that is not a plain file name is refused with a
// [*NameError].
//
// # Guarantees
//
// At most one Lock for a name of a dispatcher is held at a time, across
// its parent and all its children, and within one process: two
// goroutines of one process exclude each other as two processes do. A
// lock is released by Unlock, or by the kernel when the holding process
// ends however it ends (exit, panic, SIGKILL): a crashed child never
// leaves a lock behind. A process started while a lock is held does not
// inherit it. Each dispatcher has locks of its own: the same name in two
// dispatchers is two locks.
//
// Waiters are not served in any order; under heavy contention one waiter
// may wait while others take the lock again and again. A waiting Lock
// looks again after a pause that starts near 200µs and doubles up to
// 10ms, so it may take that long to see a release; it gives up as soon as
// its context ends, and leaves nothing behind when it does.
//
// # Names
//
// A name is the file name of the lock's file, so it must be a plain file
// name: not empty, not "." or "..", without '/' or NUL, and at most 255
// bytes. Dots, dashes, spaces and any UTF-8 are fine.
//
// # Where the files are
//
// The locks of a dispatcher are files, locked with flock(2), in a private
// directory (mode 0700) under os.TempDir, which must be on a local file
// system (on NFS, Linux emulates flock with record locks, under which two
// Locks in one process would not exclude each other). The directory is
// made by the first lock taken, in the parent or a child, so a dispatcher
// that takes no lock leaves nothing behind, and it is removed when the
// dispatcher ends. A program killed before its Shutdown leaves its
// directory behind; the next dispatcher.Start of the same user removes it
// (on Linux, where a directory's name tells which process it belongs to).
// Where there is no flock (Windows, AIX), taking a lock fails with an
// error that wraps errors.ErrUnsupported. [docs/locks.md] says more.
//
// [docs/locks.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/locks.md
package lock
