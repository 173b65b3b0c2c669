package procman

import (
	"runtime"
	"sync"
)

// threads is the process's reserve of OS threads: how many the Go runtime
// has been made to hold (see reserveThreads), and how many managers are
// set up.
var threads struct {
	sync.Mutex
	reserved int
	managers int
}

// threadMargin is how many threads the reserve holds beyond one for each
// P and one for each manager: for a thread that has just left a system
// call and not yet gone idle, and for the runtime's own.
const threadMargin = 4

// addManager counts a manager that is set up and makes the reserve of
// threads fit: one for each P (runtime.GOMAXPROCS), one for each manager
// (its goroutine forks in a system call while its P runs others) and
// threadMargin.
//
// Children take pids, and in a pids cgroup or under RLIMIT_NPROC each of
// their threads takes one too; a parent whose children have taken the last
// one must not need a new thread, or its runtime throws (newosproc, or
// pthread_create failed with cgo) and the whole program dies. The Go
// runtime never ends an idle thread and takes an idle one before it makes
// a new one, so threads made now, while there is room, are there later.
func addManager() {
	threads.Lock()
	defer threads.Unlock()
	threads.managers++
	reserveThreads(runtime.GOMAXPROCS(0) + threads.managers + threadMargin)
}

// removeManager uncounts a manager that was torn down. The threads stay.
func removeManager() {
	threads.Lock()
	threads.managers--
	threads.Unlock()
}

// reserveThreads makes the runtime hold at least n threads, idle ones
// included: n goroutines lock a thread each, all at once, and let them go.
// Threads the process holds already count; it makes only what is missing.
// Callers hold threads' lock.
func reserveThreads(n int) {
	if n <= threads.reserved {
		return
	}
	var locked, release sync.WaitGroup
	locked.Add(n)
	release.Add(1)
	for range n {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	release.Done()
	threads.reserved = n
}
