//go:build linux && !procrastinate_portable

package procman

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/osproc"
)

// killDescendants kills with SIGKILL every descendant of the process
// root ("self" for this one) that is alive, with the process group of
// each descendant that leads one, and reports how many it killed. It
// finds them in /proc (each thread's children file), and recursively in
// theirs; it never waits on any of them.
//
// A descendant whose parent died is reparented to the nearest subreaper
// above it: a child of a Manager is one (see becomeSubreaper), so what
// its tasks started and left (a daemon after its double fork) is its
// child while it lives, and found here. What forks between the walk and
// the kill may escape it.
//
// Each kill goes through a pidfd opened before the process's parent is
// checked again, so that a pid reused by a stranger once its owner was
// reaped is never signalled: the stranger's parent is not the one
// expected. A group is killed only when a descendant leads it: a task
// may have moved a process into a group of someone else's (its parent's).
func killDescendants(root string) int {
	rootPid := os.Getpid()
	if root != "self" {
		rootPid, _ = strconv.Atoi(root)
	}
	type proc struct{ pid, ppid int }
	var found []proc
	seen := map[int]bool{}
	queue := []proc{{pid: rootPid}}
	for len(queue) > 0 && len(found) < maxDescendants {
		p := queue[0]
		queue = queue[1:]
		for _, kid := range osproc.Children(p.pid) {
			if !seen[kid] {
				seen[kid] = true
				found = append(found, proc{pid: kid, ppid: p.pid})
				queue = append(queue, proc{pid: kid})
			}
		}
	}
	killed := 0
	for _, p := range found {
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			continue // gone
		}
		state, ppid, pgid, ok := osproc.Stat(p.pid)
		if ok && ppid == p.ppid && state != 'Z' && state != 'X' {
			if pgid == p.pid {
				_ = unix.Kill(-pgid, unix.SIGKILL)
			}
			if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
				killed++
			}
		}
		unix.Close(fd)
	}
	return killed
}

// maxDescendants bounds the walk of killDescendants: a fork bomb must not
// hold up the end of its child for ever.
const maxDescendants = 1 << 14

// hasChildren reports whether this process has a child, alive or a
// zombie, and reaps nothing.
func hasChildren() bool { return osproc.HasChildren() }

// becomeSubreaper makes this process the parent of its orphaned
// descendants (PR_SET_CHILD_SUBREAPER), so that killDescendants finds
// them. An error (a kernel before 3.4) leaves them to init.
func becomeSubreaper() {
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
