package testio

import (
	"time"

	"golang.org/x/sys/unix"
)

// WaitExited waits up to within until the process pid has exited, and
// reports whether it has. The kernel says when (a pidfd of the process
// becomes readable once its whole thread group has exited), so nothing is
// polled. A process that no longer exists has exited; so has one whose
// start time (field 22 of its stat) is not start, when start is not 0:
// the pid is another process's now. WaitExited reaps nothing, and works
// for any process, not only a child of this one.
func WaitExited(pid int, start uint64, within time.Duration) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	if start != 0 {
		if s, err := ReadStat(pid); err != nil || s.Start != start {
			return true, nil
		}
	}
	deadline := time.Now().Add(within)
	for {
		ms := max(time.Until(deadline).Milliseconds(), 0)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(ms))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
	}
}
