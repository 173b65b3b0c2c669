//go:build linux

package leakcheck

import (
	"os"
	"strconv"
	"syscall"

	"github.com/procrastinate-go/procrastinate/internal/testio"
)

// children lists the children of this process, alive or zombie, from
// /proc/<pid>/stat of every process: their ppid is our pid.
func children() []proc {
	stats, _ := testio.Children(os.Getpid())
	out := make([]proc, 0, len(stats))
	for _, s := range stats {
		out = append(out, proc{procKey: procKey{pid: s.Pid, start: s.Start}, comm: s.Comm, state: s.State})
	}
	return out
}

// fds maps every fd of this process to what it refers to (the link in
// /proc/self/fd), leaving out the fd that reads the directory.
func fds() map[int]string {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	names := readDirFD(dir)
	out := make(map[int]string, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dir {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil {
			continue // closed meanwhile
		}
		out[fd] = target
	}
	syscall.Close(dir)
	return out
}

// readDirFD lists the names in the directory open at fd with raw system
// calls, so that the listing holds no fd but the caller's, whose number
// fds can leave out.
func readDirFD(fd int) []string {
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return names
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}
