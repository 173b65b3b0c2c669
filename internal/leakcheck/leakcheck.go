package leakcheck

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// DefaultWait is how long Verify and Check wait for children to be reaped
// and fds to be closed before they report a leak.
const DefaultWait = 5 * time.Second

// Snapshot records the child processes and the fds of this process at one
// moment. The zero value is not usable; get one from Take.
type Snapshot struct {
	children map[procKey]bool // children at the snapshot: not the test's
	fds      map[int]string   // open fd -> what it refers to
}

// procKey names a process for good: a pid may be reused, a pid with its
// start time may not.
type procKey struct {
	pid   int
	start uint64
}

// proc is one child process as /proc shows it.
type proc struct {
	procKey
	comm  string
	state byte // R, S, D, Z, ...
}

// Take records the children and fds of this process now.
//
// Before it looks, it makes the Go runtime open the fds it keeps for the
// life of the process (the network poller's epoll set and its wakeup fd),
// which would otherwise appear the first time a test uses a pipe and look
// like a leak.
func Take() *Snapshot {
	warmUp()
	s := &Snapshot{children: make(map[procKey]bool), fds: make(map[int]string)}
	for _, p := range children() {
		s.children[p.procKey] = true
	}
	for fd, target := range fds() {
		s.fds[fd] = target
	}
	return s
}

// warmUp opens and closes a pipe through the os package, which sets up
// the runtime's network poller once and for all.
func warmUp() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
}

// Leaks polls for up to within until no child and no fd is left that the
// snapshot does not hold, and returns nil then. Otherwise it returns an
// error that lists each leak, with the child's pid, command and state or
// the fd's number and target. within 0 looks once.
func (s *Snapshot) Leaks(within time.Duration) error {
	deadline := time.Now().Add(within)
	delay := time.Millisecond
	for {
		leaks := s.find()
		if len(leaks) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("leakcheck: %d left behind (waited %v):\n\t%s", len(leaks), within, strings.Join(leaks, "\n\t"))
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// Verify fails t (t.Error) when children or fds leaked since the snapshot,
// after waiting up to DefaultWait for them to go.
func (s *Snapshot) Verify(t testing.TB) {
	t.Helper()
	if err := s.Leaks(DefaultWait); err != nil {
		t.Error(err)
	}
}

// Check takes a snapshot now and verifies it when t ends, after t's defers
// and after the cleanups registered later than Check. Call it first thing
// in the test.
func Check(t testing.TB) {
	t.Helper()
	s := Take()
	t.Cleanup(func() { s.Verify(t) })
}

// find lists the leaks now.
func (s *Snapshot) find() []string {
	var leaks []string
	for _, p := range children() {
		if s.children[p.procKey] {
			continue
		}
		what := "alive, state " + string(p.state)
		if p.state == 'Z' {
			what = "a zombie (exited, not reaped)"
		}
		leaks = append(leaks, fmt.Sprintf("child process %d (%s): %s", p.pid, p.comm, what))
	}
	now := fds()
	var fdLeaks []int
	for fd, target := range now {
		if was, ok := s.fds[fd]; !ok || was != target {
			fdLeaks = append(fdLeaks, fd)
		}
	}
	sort.Ints(fdLeaks)
	for _, fd := range fdLeaks {
		msg := fmt.Sprintf("fd %d -> %s", fd, now[fd])
		if was, ok := s.fds[fd]; ok {
			msg += fmt.Sprintf(" (at the snapshot it was %s)", was)
		}
		leaks = append(leaks, msg)
	}
	return leaks
}
