//go:build unix

package procman

import (
	"fmt"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigXCPU is the signal of a CPU time limit.
const sigXCPU = syscall.SIGXCPU

// isPipe reports whether fd is open on a pipe.
func isPipe(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO
}

// isSocket reports whether fd is open on a socket.
func isSocket(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK
}

// sendFD sends fd on the non-blocking socket sock, in a datagram of one
// byte.
func sendFD(sock, fd int) error {
	for {
		err := unix.Sendmsg(sock, []byte{0}, unix.UnixRights(fd), nil, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// closeOnExec marks fd close-on-exec.
func closeOnExec(fd int) { syscall.CloseOnExec(fd) }

// setNonblock makes fd non-blocking.
func setNonblock(fd int) error { return syscall.SetNonblock(fd, true) }

// processGroup returns this process's group id.
func processGroup() int { return syscall.Getpgrp() }

// killGroup sends sig to the process group pgid.
func killGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }

// killSelf sends sig to this process.
func killSelf(sig syscall.Signal) error { return syscall.Kill(syscall.Getpid(), sig) }

// closeInherited closes every fd above the protocol pipes that came to
// this process through exec. The Go runtime and the program open theirs
// close-on-exec, so at this point an fd without the flag is one that the
// parent's own launcher (a shell, a CI runner) leaked to the parent, which
// passed it on without knowing: a child holds fds 0 to 5 and nothing else
// of its parent's world. Best effort: it lists the fds in /proc/self/fd,
// or in /dev/fd (macOS; FreeBSD's shows every fd only with fdescfs
// mounted), and without either it does nothing.
func closeInherited() {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		if dir, err = syscall.Open("/dev/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0); err != nil {
			return
		}
	}
	var names []string
	buf := make([]byte, 4096)
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	syscall.Close(dir)
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= controlFD || fd == dir {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}

// rawWriter writes to a non-blocking pipe without telling the Go runtime
// (see rawRead), and waits on the runtime's poller while the pipe is full.
type rawWriter struct{ conn syscall.RawConn }

func (w *rawWriter) Write(p []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := w.conn.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
			switch e {
			case 0:
				done += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until the pipe has room
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return done, fmt.Errorf("writing the message pipe: %w", err)
	}
	return done, nil
}

// rawRead reads from fd without telling the Go runtime: a read of a
// non-blocking pipe never blocks, and the runtime's system-call entry
// would wake its monitor thread when the process had been idle, which
// costs a waking child a thread wake-up it does not need.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}
