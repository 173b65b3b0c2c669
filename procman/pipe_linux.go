//go:build linux

package procman

import "golang.org/x/sys/unix"

// pipeHolds reports whether the pipe at fd has bytes waiting to be read.
func pipeHolds(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	return err == nil && n > 0
}
