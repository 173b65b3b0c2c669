//go:build unix && (!linux || procrastinate_portable)

package procman

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeHolds reports whether the pipe at fd has bytes waiting to be read.
func pipeHolds(fd int) bool {
	n, err := pipeLen(fd)
	return err == nil && n > 0
}

// pipeLen returns how many bytes the pipe at fd holds, unread. On the
// write end, only Linux tells: the BSDs and macOS say 0.
func pipeLen(fd int) (int, error) { return unix.IoctlGetInt(fd, fionread) }

// closeFD closes fd.
func closeFD(fd int) { unix.Close(fd) }

// fileMin is the payload size from which a child's frame goes to its
// parent in a file (see frameFile): the child writes the payload to a
// file of its own and sends the parent its descriptor, and the parent
// reads it whole. Through the pipe, which holds 64 KiB here, such a
// payload would cost both processes a wake-up for every 64 KiB.
const fileMin = 1 << 20

// spliceMin is never reached by the portable backend: vmsplice is
// Linux's, and every payload is written.
const spliceMin = int(^uint(0) >> 1)

func writeSpliced(conn syscall.RawConn, payload []byte) (int, error) {
	return 0, errors.New("procman: vmsplice is Linux's")
}

func spliceRefused(err error) bool { return true }

func waitDrained(fd int) {}
