package testio

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Stat is what tests read in /proc/<pid>/stat (see proc(5)): the fields
// they check, by the names proc(5) gives them.
type Stat struct {
	Pid   int    // field 1
	Comm  string // field 2, without its parentheses; it may hold spaces and parentheses
	State byte   // field 3: R, S, D, T, t, Z, X, ...
	PPid  int    // field 4
	Nice  int    // field 19
	Start uint64 // field 22: the start time, in clock ticks since boot
}

// Exited reports whether the process has exited: it is a zombie (Z),
// waiting for its parent to reap it, or dead (X).
func (s Stat) Exited() bool { return s.State == 'Z' || s.State == 'X' }

// ReadStat reads /proc/<pid>/stat. When there is no such process, the
// error wraps fs.ErrNotExist.
func ReadStat(pid int) (Stat, error) {
	return readStat("/proc/" + strconv.Itoa(pid) + "/stat")
}

// Alive reports whether pid is a process that has not exited: one that
// exists and is neither a zombie nor dead.
func Alive(pid int) bool {
	s, err := ReadStat(pid)
	return err == nil && !s.Exited()
}

// ParseStat parses the text of a /proc/<pid>/stat file. The command name
// may hold spaces and parentheses, so the fields after it are counted from
// the last ')'.
func ParseStat(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("testio: stat %q has no command name in parentheses", b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("testio: stat %q: pid: %w", b, err)
	}
	f := bytes.Fields(b[end+1:]) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("testio: stat %q has %d fields after the command name; want 20 or more, the first one letter", b, len(f))
	}
	s := Stat{Pid: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	if s.PPid, err = strconv.Atoi(string(f[1])); err != nil {
		return Stat{}, fmt.Errorf("testio: stat %q: ppid: %w", b, err)
	}
	if s.Nice, err = strconv.Atoi(string(f[16])); err != nil {
		return Stat{}, fmt.Errorf("testio: stat %q: nice: %w", b, err)
	}
	if s.Start, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("testio: stat %q: starttime: %w", b, err)
	}
	return s, nil
}

// Children returns the stat of every child of the process ppid, alive or
// zombie. A process that ends while it reads is left out.
func Children(ppid int) ([]Stat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		s, err := ReadStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if s.PPid == ppid {
			out = append(out, s)
		}
	}
	return out, nil
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
		s, err := ParseStat(b)
		if err != nil {
			return nil, err
		}
		levels = append(levels, s.Nice)
	}
	return levels, nil
}

// readStat reads and parses one stat file. A process that ends between
// the open and the read makes the read fail with ESRCH, which it reports
// as fs.ErrNotExist too.
func readStat(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, syscall.ESRCH) {
		return Stat{}, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}
