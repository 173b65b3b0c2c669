//go:build unix

package osproc

import (
	"errors"
	"fmt"
	"syscall"
)

// MaxRSS returns this process's peak resident set in bytes as getrusage
// gives it, or 0 when it cannot tell.
func MaxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return maxRSSBytes(int64(ru.Maxrss))
}

// MaxRSSBytes converts ru_maxrss, as getrusage or wait4 give it on this
// system, to bytes.
func MaxRSSBytes(v int64) int64 { return maxRSSBytes(v) }

// SignalGroup sends sig to the process group that this process leads,
// and so to what it started in it and to itself. A process that leads no
// group (one started by hand, in its starter's group) signals nothing and
// gets an error; a group left empty is no error.
func SignalGroup(sig syscall.Signal) error {
	pid := syscall.Getpid()
	if syscall.Getpgrp() != pid {
		return errors.New("osproc: this process does not lead a process group")
	}
	if err := syscall.Kill(-pid, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("osproc: signalling process group %d: %w", pid, err)
	}
	return nil
}
