//go:build linux && !procrastinate_portable

package command

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/osproc"
)

// proc is a command's process: its pid, and a pidfd that names it
// whatever happens to the pid.
type proc struct{ pid, pidfd int }

// startProc forks and execs path with a pidfd for the new process.
func startProc(path string, argv []string, attr *syscall.ProcAttr) (*proc, error) {
	p := &proc{pidfd: -1}
	attr.Sys.PidFD = &p.pidfd
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return nil, err
	}
	p.pid = pid
	return p, nil
}

// awaitExit waits for p to exit without reaping it; peeked is always
// true here.
func (p *proc) awaitExit() (peeked bool, err error) {
	var info unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PIDFD, p.pidfd, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err == nil, err
		}
	}
}

// finish reaps p, which has exited and whose group was killed, then ends
// what it left outside its group, and reports how many it ended.
func (p *proc) finish(ws *unix.WaitStatus, ru *unix.Rusage, mark string) (int, error) {
	if err := p.reap(ws, ru); err != nil {
		return 0, err
	}
	return endLeftovers(p.pid, mark), nil
}

// release closes the pidfd.
func (p *proc) release() { unix.Close(p.pidfd) }

// A command's leftovers are found among this process's children: the
// child that runs commands is a subreaper, so a process whose parent died
// is its child from then on, whatever group or session it moved to. A
// child of this process is the command's when it is in the command's
// process group or carries the command's mark in its environment
// (markEnv, which what it starts inherits); other children (those of
// os/exec in the same program) are neither killed nor reaped.

// adoptsLeftovers says that what a command leaves is found and ended
// here, also out of its group.
const adoptsLeftovers = true

// maxLeftovers bounds a walk: a fork bomb must not hold a call up for
// ever.
const maxLeftovers = 1 << 14

// endLeftovers kills what the command whose group is pgid and whose mark
// is mark left behind, with everything below it, and reaps each once it
// is this process's child, by its pidfd. It returns how many it ended.
// Each kill goes through a pidfd opened before the process's parent is
// checked again, so that a reused pid is never signalled.
func endLeftovers(pgid int, mark string) int {
	if !osproc.HasChildren() {
		return 0
	}
	return endAdopted(pgid, mark)
}

// endAdopted is endLeftovers once this process is known to have a child.
func endAdopted(pgid int, mark string) int {
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
