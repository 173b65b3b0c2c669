//go:build freebsd && (amd64 || arm64 || riscv64)

package command

import "golang.org/x/sys/unix"

// exitedWait waits for the child pid to exit without reaping it:
// wait6(P_PID, WNOWAIT). peeked is always true here.
func exitedWait(pid int) (peeked bool, err error) {
	const pPID = 0 // P_PID in <sys/wait.h>
	_, _, e := unix.Syscall6(unix.SYS_WAIT6, pPID, uintptr(pid), 0, unix.WEXITED|unix.WNOWAIT, 0, 0)
	if e != 0 {
		return false, e
	}
	return true, nil
}
