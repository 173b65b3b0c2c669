//go:build linux

package dispatcher

import (
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// interruptible returns a writer to the same place as w whose writes a
// deadline can cut short, and a function that releases it; or w itself
// and a no-op when w already takes deadlines or no such copy can be made.
//
// An *os.File that the Go runtime's poller does not hold (the process's
// own stderr, a blocking pipe, a terminal) has no write deadline: a write
// to a reader that stalls would hold the writer goroutine for as long as
// the reader does. A pipe or a terminal opened anew through
// /proc/self/fd is a new open file, whose O_NONBLOCK is its own, so the
// copy waits in the poller while the original and whoever else shares it
// stay as they were. A regular file is left alone: its writes do not
// wait for a reader, and a new open file would lose O_APPEND and the
// offset.
func interruptible(w io.Writer) (io.Writer, func()) {
	f, ok := w.(*os.File)
	if !ok || f.SetWriteDeadline(time.Time{}) == nil {
		return w, func() {}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return w, func() {}
	}
	if mode := st.Mode & unix.S_IFMT; mode != unix.S_IFIFO && mode != unix.S_IFCHR {
		return w, func() {}
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return w, func() {}
	}
	nb := os.NewFile(uintptr(fd), f.Name())
	if nb.SetWriteDeadline(time.Time{}) != nil {
		nb.Close()
		return w, func() {}
	}
	return nb, func() { nb.Close() }
}
