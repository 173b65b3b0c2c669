// Package pgroup records the process groups that a child process started
// for its tasks and has not reaped the leaders of, so that the child can
// kill them as it ends where it cannot find its descendants otherwise
// (procman's portable backend: no /proc to walk, no subreaper).
package pgroup

import "sync"

var (
	mu     sync.Mutex
	groups = map[int]int{} // process group id -> how many times recorded
)

// Add records the process group pgid, led by a child of this process
// that it has not reaped.
func Add(pgid int) {
	mu.Lock()
	groups[pgid]++
	mu.Unlock()
}

// Remove forgets pgid, once for each Add. Call it before the group's
// leader is reaped: once Remove has returned, KillAll does not signal
// pgid, which the system may give to another group after the reaping.
func Remove(pgid int) {
	mu.Lock()
	if groups[pgid]--; groups[pgid] <= 0 {
		delete(groups, pgid)
	}
	mu.Unlock()
}

// Any reports whether a group is recorded.
func Any() bool {
	mu.Lock()
	defer mu.Unlock()
	return len(groups) > 0
}

// KillAll sends SIGKILL to every group recorded, and reports how many
// it reached.
func KillAll() int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for pgid := range groups {
		if killGroup(pgid) == nil {
			n++
		}
	}
	return n
}
