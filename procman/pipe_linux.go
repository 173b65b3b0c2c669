//go:build linux

package procman

import (
	"errors"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipeHolds reports whether the pipe at fd has bytes waiting to be read.
func pipeHolds(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	return err == nil && n > 0
}

// spliceMin is the payload size from which a child's frame goes to its
// parent by vmsplice(2). The pipe then holds the payload's own pages
// instead of a copy: the child copies nothing, allocates no pipe pages, and
// holds the pipe's lock only to link the pages, so that the parent's read,
// the one copy left, no longer waits on the child's. Below it, a plain
// write is as fast.
const spliceMin = 1 << 20

// writeSpliced writes payload to the pipe behind conn with vmsplice(2),
// waiting on the runtime's poller while the pipe is full, and returns how
// many bytes went. The pipe refers to payload's pages until the parent has
// read them: payload must stay alive and unchanged until waitDrained
// returns.
func writeSpliced(conn syscall.RawConn, payload []byte) (int, error) {
	done := 0
	var werr error
	err := conn.Write(func(fd uintptr) bool {
		for done < len(payload) {
			rest := payload[done:]
			iov := []unix.Iovec{{Base: &rest[0]}}
			iov[0].SetLen(len(rest))
			n, err := vmsplice(int(fd), iov, unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false // wait until the pipe has room
			case err != nil:
				werr = err
				return true
			}
			done += n
		}
		return true
	})
	if err != nil {
		return done, err
	}
	return done, werr
}

// vmsplice is unix.Vmsplice; tests put a refusing one in its place.
var vmsplice = unix.Vmsplice

// spliceRefused reports whether err says that this system does not let
// the process vmsplice (no such call, or not allowed), as opposed to the
// pipe's failing.
func spliceRefused(err error) bool {
	return errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)
}

// waitDrained waits until the pipe at fd is empty: its reader has taken
// all that was written to it. Nothing signals that, so it polls: first
// for about 50 µs without sleeping (a parent reads its children's pipes
// as they fill, and a sleep in an idle Go process lasts a millisecond),
// then every 50 µs.
func waitDrained(fd int) {
	for i := 0; pipeHolds(fd); i++ {
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

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
