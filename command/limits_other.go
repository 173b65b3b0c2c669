//go:build unix && !linux

package command

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// addNice adds n to the nice level of this process.
func addNice(n int) error {
	cur, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return err
	}
	return unix.Setpriority(unix.PRIO_PROCESS, 0, cur+n)
}

// prepareExec returns the exec of path with argv and env; it returns
// only when that fails.
func prepareExec(path string, argv, env []string) (func() syscall.Errno, error) {
	return func() syscall.Errno {
		err := syscall.Exec(path, argv, env)
		if e, ok := err.(syscall.Errno); ok {
			return e
		}
		return syscall.EINVAL
	}, nil
}
