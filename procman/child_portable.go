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

// cpuLimited reports whether this process has a CPU time limit.
func cpuLimited() bool {
	var lim unix.Rlimit
	return unix.Getrlimit(unix.RLIMIT_CPU, &lim) == nil && lim.Cur != unix.RLIM_INFINITY
}
