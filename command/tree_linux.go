//go:build linux

package command

import (
	"bytes"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/osproc"
)

// A command's leftovers are found among this process's children: the
// child that runs commands is a subreaper, so a process whose parent died
// is its child from then on, whatever group or session it moved to. A
// child of this process is the command's when it is in the command's
// process group or carries the command's mark in its environment
// (markEnv, which what it starts inherits); other children (those of
// os/exec in the same program) are neither killed nor reaped.

// markEnv is the variable that marks a command's processes.
const markEnv = "PROCRASTINATE_COMMAND"

var markSeq atomic.Uint64

// newMark returns the value of markEnv for a new command, unique in this
// machine's processes while this one lives.
func newMark() string {
	return strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(markSeq.Add(1), 10)
}

// maxLeftovers bounds a walk: a fork bomb must not hold a call up for
// ever.
const maxLeftovers = 1 << 14

// endLeftovers kills what the command whose group is pgid and whose mark
// is mark left behind, with everything below it, and reaps each once it
// is this process's child, by its pidfd. It returns how many it ended.
// Each kill goes through a pidfd opened before the process's parent is
// checked again, so that a reused pid is never signalled.
func endLeftovers(pgid int, mark string) int {
	self := os.Getpid()
	needle := []byte(markEnv + "=" + mark + "\x00")
	ended := 0
	for round := 0; round < 8; round++ {
		type proc struct{ pid, fd int }
		var found []proc
		queue := []int{self}
		for len(queue) > 0 && len(found) < maxLeftovers {
			p := queue[0]
			queue = queue[1:]
			for _, kid := range osproc.Children(p) {
				fd, err := unix.PidfdOpen(kid, 0)
				if err != nil {
					continue
				}
				state, ppid, kpgid, ok := osproc.Stat(kid)
				if !ok || ppid != p || (p == self && kpgid != pgid && !marked(kid, needle)) {
					unix.Close(fd)
					continue
				}
				if state != 'Z' && state != 'X' {
					if kpgid == kid {
						_ = unix.Kill(-kid, unix.SIGKILL)
					}
					_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				}
				found = append(found, proc{kid, fd})
				queue = append(queue, kid)
			}
		}
		if len(found) == 0 {
			return ended
		}
		// Once each has exited, each has come to this process: its
		// parent, killed too, handed it on as it exited.
		for _, p := range found {
			fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
			for {
				if _, err := unix.Poll(fds, 5000); err != unix.EINTR {
					break
				}
			}
		}
		for _, p := range found {
			var info unix.Siginfo
			for {
				err := unix.Waitid(unix.P_PIDFD, p.fd, &info, unix.WEXITED|unix.WNOHANG, nil)
				if err != unix.EINTR {
					break
				}
			}
			unix.Close(p.fd)
		}
		ended += len(found)
	}
	return ended
}

// marked reports whether the environment pid started with holds needle.
func marked(pid int, needle []byte) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	return bytes.Contains(append([]byte{0}, b...), append([]byte{0}, needle...))
}
