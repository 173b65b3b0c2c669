//go:build linux && !procrastinate_portable

package procman

import (
	"fmt"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysProcess is the Linux backend's part of a Process: the pidfd that
// names the child for reaping and signalling, so that a pid reused after
// the child was reaped is never reached.
type sysProcess struct {
	pidfd int // -1 once the child is reaped
}

// siginfo is the part of siginfo_t that waitid fills for a child.
type siginfo struct {
	signo  int32
	errno  int32
	code   int32
	_      int32
	pid    int32
	uid    uint32
	status int32
	_      [128 - 28]byte
}

// From <sys/wait.h> and <signal.h>.
const (
	pPIDFD    = 3 // P_PIDFD, Linux 5.4
	cldExited = 1 // CLD_EXITED
	cldDumped = 3 // CLD_DUMPED
)

// reap collects the child's exit status and hands it to reaped, or to
// lostExit when someone else took it.
// Unless block is set it returns without doing anything when the child
// has not exited yet.
func (p *Process) reap(block bool) {
	opts := unix.WEXITED
	if !block {
		opts |= unix.WNOHANG
		// Peek first, so that the group is killed while the zombie still
		// holds the pid (and so the group id) against reuse.
		var peek siginfo
		err := waitid(p.pidfd, &peek, opts|unix.WNOWAIT, nil)
		if err == unix.ECHILD {
			p.lostExit()
			return
		}
		if err != nil || peek.pid == 0 {
			return
		}
	}
	// Whatever the child left running in its group goes with it; a child
	// waited for (Teardown) is killed too, also one that left its group.
	_ = unix.Kill(-p.pid, unix.SIGKILL)
	if block {
		_ = unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0)
	}
	var info siginfo
	var ru unix.Rusage
	if err := waitid(p.pidfd, &info, opts, &ru); err != nil {
		if err == unix.ECHILD {
			p.lostExit()
			return
		}
		p.m.log.Error("waitid on a child's pidfd", "pid", p.pid, "error", err)
		return
	}
	if info.pid == 0 {
		return
	}
	e := &Exit{
		Pid:        p.pid,
		Duration:   time.Since(p.started),
		UserTime:   time.Duration(ru.Utime.Nano()),
		SystemTime: time.Duration(ru.Stime.Nano()),
		MaxRSS:     ru.Maxrss * 1024,
	}
	switch info.code {
	case cldExited:
		e.ExitCode = int(info.status)
	default: // CLD_KILLED, CLD_DUMPED
		e.ExitCode = -1
		e.Signal = syscall.Signal(info.status)
		e.Core = info.code == cldDumped
	}
	p.reaped(e)
}

// releaseProc stops watching the child's pidfd and closes it: the child
// was reaped.
func (p *Process) releaseProc() {
	p.m.unwatch(p.pidfd)
	unix.Close(p.pidfd)
	p.pidfd = -1
}

// signal is Signal's part for a running child: see Signal.
func (p *Process) signal(sig syscall.Signal) error {
	exited := p.exited()
	if sig == unix.SIGKILL && !exited {
		killDescendants(strconv.Itoa(p.pid))
	}
	// The pid cannot be reused before we reap it, so the group id is
	// ours; an empty group (the child left it) is no error.
	_ = unix.Kill(-p.pid, sig)
	if exited {
		return ErrProcessDone
	}
	err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	if err == unix.ESRCH {
		return ErrProcessDone
	}
	if err != nil {
		return fmt.Errorf("procman: signalling child %d: %w", p.pid, err)
	}
	return nil
}

// exited reports whether the child has exited, without reaping it. A child
// whose exit status someone else took has exited too.
func (p *Process) exited() bool {
	var info siginfo
	err := waitid(p.pidfd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != nil || info.pid != 0
}

func waitid(pidfd int, info *siginfo, opts int, ru *unix.Rusage) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_WAITID, pPIDFD, uintptr(pidfd), uintptr(unsafe.Pointer(info)), uintptr(opts), uintptr(unsafe.Pointer(ru)), 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
