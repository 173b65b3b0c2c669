//go:build unix && !linux

package osproc

import "syscall"

// SetGroupNice sets nice on the process group that this process leads,
// and on nothing when it leads none. It reports no error.
func SetGroupNice(nice int) {
	_ = syscall.Setpriority(syscall.PRIO_PGRP, syscall.Getpid(), nice)
}
