//go:build linux && !procrastinate_portable

package procman

import (
	"errors"
	"math"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeHolds reports whether the pipe at fd has bytes waiting to be read.
func pipeHolds(fd int) bool {
	n, err := pipeLen(fd)
	return err == nil && n > 0
}

// pipeLen returns how many bytes the pipe at fd holds, unread.
func pipeLen(fd int) (int, error) {
	return unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
}

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

// closeFD closes fd.
func closeFD(fd int) { unix.Close(fd) }

// spliceMin is the payload size from which a child's frame goes to its
// parent by vmsplice(2). The pipe then holds the payload's own pages
// instead of a copy: the child copies nothing, allocates no pipe pages, and
// holds the pipe's lock only to link the pages, so that the parent's read,
// the one copy left, no longer waits on the child's. Below it, a plain
// write is as fast.
const spliceMin = 1 << 20

// writeSpliced writes payload to the pipe behind conn with vmsplice(2),
// waiting on the runtime's poller while the pipe is full, and returns how
// many bytes went. The pipe refers to payload's pages until the parent has
// read them: payload must stay alive and unchanged until waitDrained
// returns.
func writeSpliced(conn syscall.RawConn, payload []byte) (int, error) {
	done := 0
	var werr error
	err := conn.Write(func(fd uintptr) bool {
		for done < len(payload) {
			rest := payload[done:]
			iov := []unix.Iovec{{Base: &rest[0]}}
			iov[0].SetLen(len(rest))
			n, err := vmsplice(int(fd), iov, unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false // wait until the pipe has room
			case err != nil:
				werr = err
				return true
			}
			done += n
		}
		return true
	})
	if err != nil {
		return done, err
	}
	return done, werr
}

// fileMin is never reached here: a large payload goes by vmsplice, and
// no child gets a file socket.
const fileMin = math.MaxInt

// vmsplice is unix.Vmsplice; tests put a refusing one in its place.
var vmsplice = unix.Vmsplice

// spliceRefused reports whether err says that this system does not let
// the process vmsplice (no such call, or not allowed), as opposed to the
// pipe's failing.
func spliceRefused(err error) bool {
	return errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)
}

// waitDrained waits until the pipe at fd is empty: its reader has taken
// all that was written to it. Nothing signals that, so it polls: first
// for about 50 µs without sleeping (a parent reads its children's pipes
// as they fill, and a sleep in an idle Go process lasts a millisecond),
// then every 50 µs.
func waitDrained(fd int) {
	for i := 0; pipeHolds(fd); i++ {
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}
