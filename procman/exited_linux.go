//go:build linux && procrastinate_portable

package procman

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// exitedPid reports whether the child pid has exited, without reaping it:
// waitid(P_PID, WNOWAIT). The zombie keeps the pid, and so its process
// group's id, from being reused while the manager kills what is left in
// the group. ok is false when the system cannot tell without reaping
// (never here), err is ECHILD when the child's status was taken by
// someone else.
func exitedPid(pid int) (exited, ok bool, err error) {
	var info struct {
		signo, errno, code, _ int32
		pid                   int32
		_                     [128 - 20]byte
	}
	for {
		_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(pid), uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case 0:
			return info.pid != 0, true, nil
		}
		return false, true, e
	}
}

// fionread is the ioctl that says how many bytes a pipe holds (FIONREAD).
const fionread = unix.TIOCINQ
