//go:build !unix

package osproc

import (
	"errors"
	"syscall"
)

// MaxRSS returns 0: this system has no getrusage.
func MaxRSS() int64 { return 0 }

// SignalGroup fails: this system has no process groups.
func SignalGroup(sig syscall.Signal) error {
	return errors.New("osproc: no process groups on this system")
}

// SetGroupNice does nothing: this system has no nice levels.
func SetGroupNice(nice int) {}
