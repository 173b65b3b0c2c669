//go:build linux && !procrastinate_portable

package procman

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
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
		dir := root
		if p.pid != rootPid {
			dir = strconv.Itoa(p.pid)
		}
		for _, kid := range childrenOf(dir) {
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
		state, ppid, pgid, ok := statOf(p.pid)
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

// childrenOf returns the children of the process whose /proc directory
// is /proc/dir: those of each of its threads.
func childrenOf(dir string) []int {
	tasks, err := os.ReadDir("/proc/" + dir + "/task")
	if err != nil {
		return nil
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + dir + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				kids = append(kids, pid)
			}
		}
	}
	return kids
}

// statOf returns the state, parent and process group of pid, from
// /proc/pid/stat.
func statOf(pid int) (state byte, ppid, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgid, err2 := strconv.Atoi(string(f[2]))
	return f[0][0], ppid, pgid, err1 == nil && err2 == nil
}

// hasChildren reports whether this process has a child, alive or a
// zombie. It peeks with waitid(P_ALL, WNOWAIT): nothing is reaped, so
// no exit status is taken from anyone (os/exec in a task waits on its
// own), and it costs one system call where a child has none, as most
// children of a Manager at their end.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
	return err != unix.ECHILD
}

// becomeSubreaper makes this process the parent of its orphaned
// descendants (PR_SET_CHILD_SUBREAPER), so that killDescendants finds
// them. An error (a kernel before 3.4) leaves them to init.
func becomeSubreaper() {
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
