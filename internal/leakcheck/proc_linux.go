//go:build linux

package leakcheck

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// children lists the children of this process, alive or zombie, by
// reading /proc/<pid>/stat for every process: their ppid is our pid.
func children() []proc {
	self := os.Getpid()
	var out []proc
	for _, name := range readDir("/proc") {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		p, ppid, ok := stat(pid)
		if ok && ppid == self {
			out = append(out, p)
		}
	}
	return out
}

// stat parses /proc/<pid>/stat: "pid (comm) state ppid ... starttime ...".
// The command may hold spaces and parentheses, so fields are counted from
// the last ')'.
func stat(pid int) (p proc, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p, 0, false // gone meanwhile
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return p, 0, false
	}
	f := bytes.Fields(b[end+1:])
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return p, 0, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return p, 0, false
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return p, 0, false
	}
	p = proc{procKey: procKey{pid: pid, start: start}, comm: string(b[open+1 : end]), state: f[0][0]}
	return p, ppid, true
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

// readDir lists a directory's names with raw system calls, so that the
// listing holds one fd of its own, whose number fds can leave out.
func readDir(path string) []string {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	return readDirFD(fd)
}

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
