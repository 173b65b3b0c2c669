//go:build linux && procrastinate_portable

package command

import "golang.org/x/sys/unix"

// exitedWait waits for the child pid to exit without reaping it:
// waitid(P_PID, WNOWAIT). peeked is always true here.
func exitedWait(pid int) (peeked bool, err error) {
	var info unix.Siginfo
	err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
	return err == nil, err
}
