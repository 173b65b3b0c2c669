//go:build freebsd && (amd64 || arm64 || riscv64)

package procman

import "golang.org/x/sys/unix"

// exitedPid reports whether the child pid has exited, without reaping it:
// wait6(P_PID, WNOWAIT). The zombie keeps the pid, and so its process
// group's id, from being reused while the manager kills what is left in
// the group. ok is false when the system cannot tell without reaping
// (never here), err is ECHILD when the child's status was taken by
// someone else.
func exitedPid(pid int) (exited, ok bool, err error) {
	const pPID = 0 // P_PID in <sys/wait.h>
	for {
		r, _, e := unix.Syscall6(unix.SYS_WAIT6, pPID, uintptr(pid), 0, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case 0:
			return r != 0, true, nil
		}
		return false, true, e
	}
}
