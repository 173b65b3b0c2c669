package lockdir

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// procID tells a process apart from any other that ever ran: its PID
// namespace (the inode of /proc/<pid>/ns/pid), its pid and its start time
// (in clock ticks since boot, field 22 of /proc/<pid>/stat).
type procID struct{ ns, pid, start uint64 }

// self is this process's procID; false where /proc does not say.
var self = sync.OnceValues(func() (procID, bool) {
	var st syscall.Stat_t
	if syscall.Stat("/proc/self/ns/pid", &st) != nil {
		return procID{}, false
	}
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return procID{}, false
	}
	return procID{ns: st.Ino, pid: uint64(pid), start: start}, true
})

// ownerTag returns what New puts in a directory's name after dirPrefix to
// name this process: "<ns>-<pid>-<start>-", or "" where /proc does not
// say.
func ownerTag() string {
	s, ok := self()
	if !ok {
		return ""
	}
	return strconv.FormatUint(s.ns, 10) + "-" + strconv.FormatUint(s.pid, 10) + "-" + strconv.FormatUint(s.start, 10) + "-"
}

// ownerGone reports whether tag, a directory's name after dirPrefix, names
// a process of this PID namespace that no longer runs: no process has its
// pid, or the one that has it started at another time. It reports false
// for a name that is not in ownerTag's form, for another namespace, and
// when /proc does not say.
func ownerGone(tag string) bool {
	fields := strings.SplitN(tag, "-", 4)
	if len(fields) != 4 {
		return false
	}
	var n [3]uint64
	for i := range n {
		v, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return false
		}
		n[i] = v
	}
	s, ok := self()
	if !ok || n[0] != s.ns || n[1] == 0 || n[1] > 1<<31 {
		return false
	}
	start, err := startTime(int(n[1]))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && start != n[2]
}

// startTime returns the start time of process pid, in clock ticks since
// boot: field 22 of /proc/<pid>/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields that follow begin after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("lock: /proc/" + strconv.Itoa(pid) + "/stat: no command name")
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields after the name begin with field 3
	if len(fields) <= startField {
		return 0, errors.New("lock: /proc/" + strconv.Itoa(pid) + "/stat: too few fields")
	}
	return strconv.ParseUint(fields[startField], 10, 64)
}
