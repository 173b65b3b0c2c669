//go:build linux && !procrastinate_portable

package procman

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// parentDeathSignal returns the signal the kernel sends this process when
// its parent dies (exec keeps it), or 0.
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

// cpuLimited reports whether this process has a CPU time limit.
func cpuLimited() bool {
	var lim unix.Rlimit
	return unix.Getrlimit(unix.RLIMIT_CPU, &lim) == nil && lim.Cur != unix.RLIM_INFINITY
}
