//go:build linux

package osproc

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Children returns the children of pid, those of each of its threads, as
// /proc lists them. It returns nil when pid is gone or /proc cannot be
// read.
func Children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if k, err := strconv.Atoi(string(f)); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// Stat returns the state letter, the parent and the process group of pid,
// from /proc/pid/stat; ok is false when pid is gone or the file cannot be
// parsed.
func Stat(pid int) (state byte, ppid, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold anything
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgid, err2 := strconv.Atoi(string(f[2]))
	return f[0][0], ppid, pgid, err1 == nil && err2 == nil
}

// HasChildren reports whether this process has a child, alive or a
// zombie. It peeks with waitid(P_ALL, WNOWAIT): nothing is reaped, so no
// exit status is taken from anyone (os/exec waits on its own), and it
// costs one system call where there is no child.
func HasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
	return err != unix.ECHILD
}
