// Package testio points a test process's fd 1 elsewhere for a while, so
// that the output of children, which inherit fd 1, can be caught or
// dropped, and reads what tests check in /proc. It is for tests and
// examples' tests only.
package testio

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// WithStdout runs f with fd 1 pointing to w, and points it back even if f
// panics. It changes the process's fd 1, so it must not run beside other
// code that writes to stdout.
func WithStdout(w *os.File, f func()) error {
	saved, err := unix.Dup(1)
	if err != nil {
		return err
	}
	defer unix.Close(saved)
	if err := unix.Dup2(int(w.Fd()), 1); err != nil {
		return err
	}
	defer unix.Dup2(saved, 1)
	f()
	return nil
}

// Quiet runs f with fd 1 on /dev/null, so that the children, which
// inherit it, print nowhere. It panics if fd 1 cannot be moved: a test
// setup that cannot work.
func Quiet(f func()) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	defer null.Close()
	if err := WithStdout(null, f); err != nil {
		panic(err)
	}
}

// ThreadNiceLevels returns the nice level of each thread of this process
// (field 19 of /proc/self/task/<tid>/stat), in the order of the directory.
// A thread that ends while it reads is left out.
func ThreadNiceLevels() ([]int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var levels []int
	for _, tk := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", tk.Name(), "stat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:]) // f[0] is field 3
		if len(f) < 17 {
			return nil, fmt.Errorf("testio: %s/stat has %d fields after the name; want 17 or more", tk.Name(), len(f))
		}
		nice, err := strconv.Atoi(string(f[16]))
		if err != nil {
			return nil, err
		}
		levels = append(levels, nice)
	}
	return levels, nil
}
