package osproc

import "syscall"

// SetGroupNice sets nice on every thread of the process group that this
// process leads, and on nothing when it leads none. It reports no error,
// and makes raw system calls: the runtime's own entry would wake its
// monitor thread.
func SetGroupNice(nice int) {
	pid, _, _ := syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
	_, _, _ = syscall.RawSyscall(syscall.SYS_SETPRIORITY, syscall.PRIO_PGRP, pid, uintptr(nice))
}
