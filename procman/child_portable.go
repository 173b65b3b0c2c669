//go:build unix && (!linux || procrastinate_portable) && !freebsd

package procman

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// parentDeathSignal: the portable backend asks for none (macOS has no
// such request): a child hears of its parent's death through its
// control pipe, and through SIGHUP when it is stopped as its parent dies.
func parentDeathSignal() syscall.Signal { return 0 }

// setParentDeathSignal: there is no such request here.
func setParentDeathSignal(sig syscall.Signal) error {
	return errors.New("procman: this system has no parent-death signal")
}

// setGroupNice sets nice on the process group that this process leads,
// and on nothing when it leads none (a child started by hand, in its
// starter's group). Its error is not reported: the parent set the same
// level on the same group, with the same rights, before.
func setGroupNice(nice int) {
	if syscall.Getpgrp() == syscall.Getpid() {
		_ = unix.Setpriority(unix.PRIO_PGRP, 0, nice)
	}
}

// cpuLimited reports whether this process has a CPU time limit.
func cpuLimited() bool {
	var lim unix.Rlimit
	return unix.Getrlimit(unix.RLIMIT_CPU, &lim) == nil && lim.Cur != unix.RLIM_INFINITY
}
