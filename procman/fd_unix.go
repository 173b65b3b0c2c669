//go:build unix

package procman

import "golang.org/x/sys/unix"

// readFD reads from the non-blocking fd, again when a signal interrupts
// it; syscall.EAGAIN says that nothing waits.
func readFD(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// writeFD writes b to the non-blocking fd, again when a signal
// interrupts it; syscall.EAGAIN says that the pipe is full.
func writeFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Write(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}
