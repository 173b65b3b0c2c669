//go:build linux && !procrastinate_portable

package procman

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// parentDeathSignal returns the signal the kernel sends this process when
// its parent dies (WithPdeathsig; exec keeps it), or 0.
func parentDeathSignal() syscall.Signal {
	var sig int32
	if err := unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0, 0, 0); err != nil {
		return 0
	}
	return syscall.Signal(sig)
}

// setParentDeathSignal asks the kernel to send sig to this process when
// its parent dies (PR_SET_PDEATHSIG; exec keeps it). The kernel ties it to
// the parent's thread that started this process, and sends it too when
// that thread ends (see Child.handleSignals).
func setParentDeathSignal(sig syscall.Signal) error {
	return unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sig), 0, 0, 0)
}

// setGroupNice sets nice on every thread of the process group that this
// process leads, and on nothing when it leads none (a child started by
// hand, in its starter's group). Its error is not reported: the parent set
// the same level on the same group, with the same rights, before. (Raw
// system calls: the runtime's own entry would wake its monitor thread on
// the way to the first task.)
func setGroupNice(nice int) {
	pid, _, _ := syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
	_, _, _ = syscall.RawSyscall(syscall.SYS_SETPRIORITY, syscall.PRIO_PGRP, pid, uintptr(nice))
}

// cpuLimited reports whether this process has a CPU time limit.
func cpuLimited() bool {
	var lim unix.Rlimit
	return unix.Getrlimit(unix.RLIMIT_CPU, &lim) == nil && lim.Cur != unix.RLIM_INFINITY
}
