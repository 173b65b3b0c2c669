//go:build unix && !darwin && !openbsd && !linux

package procman

// writevFD writes iov to the non-blocking fd one slice after the other
// (golang.org/x/sys has no writev here), up to the first that the pipe
// does not take whole; syscall.EAGAIN says that the pipe was full at the
// first.
func writevFD(fd int, iov [][]byte) (int, error) {
	done := 0
	for _, b := range iov {
		n, err := writeFD(fd, b)
		if n > 0 {
			done += n
		}
		if err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
		if n < len(b) {
			break
		}
	}
	return done, nil
}
