//go:build darwin || openbsd || (linux && procrastinate_portable)

package procman

import "golang.org/x/sys/unix"

// writevFD writes iov to the non-blocking fd in one writev(2), again when
// a signal interrupts it; syscall.EAGAIN says that the pipe is full.
func writevFD(fd int, iov [][]byte) (int, error) {
	for {
		n, err := unix.Writev(fd, iov)
		if err != unix.EINTR {
			return n, err
		}
	}
}
