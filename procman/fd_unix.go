//go:build unix

package procman

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

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

// takeFile receives the file a child sent on its file socket for a file
// frame. Only a regular file is taken: a read of anything else could wait
// for ever.
func (p *Process) takeFile() (int, error) {
	if p.filefd < 0 {
		return -1, errors.New("no file came with it: this backend takes none")
	}
	fd, err := recvFD(p.filefd)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("the file that came with it: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("what came with it is not a regular file (mode %#o)", st.Mode)
	}
	return fd, nil
}

// preadFull reads len(b) bytes at off from the file fd.
func preadFull(fd int, b []byte, off int64) error {
	for done := 0; done < len(b); {
		n, err := unix.Pread(fd, b[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return errFileEnded
		}
		done += n
	}
	return nil
}

// recvFD receives one descriptor from the non-blocking socket sock, made
// close-on-exec under the fork lock, so that no child started meanwhile
// inherits it. A message with no descriptor, or with more than one, is an
// error, and every descriptor it held is closed.
func recvFD(sock int) (int, error) {
	var data [1]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(sock, data[:], oob, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EAGAIN {
		return -1, errors.New("no file came with it")
	}
	if err != nil {
		return -1, fmt.Errorf("receiving the file that came with it: %w", err)
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	if len(fds) != 1 || n != 1 || flags&unix.MSG_CTRUNC != 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("%d descriptors came with it; want 1", len(fds))
	}
	return fds[0], nil
}
