package procman

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// parentDeathSignal: the child does not ask which signal its parent
// asked for; it asks for its own (see setParentDeathSignal).
func parentDeathSignal() syscall.Signal { return 0 }

// setParentDeathSignal asks the kernel to send this process SIGHUP when
// its parent dies (procctl PROC_PDEATHSIG_CTL; exec keeps it). The Go
// runtime here knows no signal above 32, so sig, a real-time signal, is
// not used: SIGHUP, which the child catches, runs its lifeline when its
// parent is gone (see Child). FreeBSD ties the request to the parent
// process, not to one of its threads.
func setParentDeathSignal(sig syscall.Signal) error {
	const (
		pPID             = 0  // P_PID
		procPdeathsigCtl = 11 // PROC_PDEATHSIG_CTL
	)
	hup := int32(syscall.SIGHUP)
	var e syscall.Errno
	switch runtime.GOARCH {
	case "386", "arm":
		_, _, e = unix.RawSyscall6(unix.SYS_PROCCTL, pPID, 0, 0, procPdeathsigCtl, uintptr(unsafe.Pointer(&hup)), 0)
	default:
		_, _, e = unix.RawSyscall6(unix.SYS_PROCCTL, pPID, 0, procPdeathsigCtl, uintptr(unsafe.Pointer(&hup)), 0, 0)
	}
	if e != 0 {
		return e
	}
	return nil
}

// cpuLimited reports whether this process has a CPU time limit.
func cpuLimited() bool {
	var lim unix.Rlimit
	return unix.Getrlimit(unix.RLIMIT_CPU, &lim) == nil && lim.Cur != unix.RLIM_INFINITY
}
