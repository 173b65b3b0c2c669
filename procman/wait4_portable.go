//go:build unix && (!linux || procrastinate_portable)

package procman

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysProcess is the portable backend's part of a Process. The pid names
// the child until the manager reaps it. Only the manager's goroutine
// reaps (wait4 on this pid, never on any pid) and signals, so a pid it
// has reaped, which the system may give to another process, is never
// signalled: Signal sees the child's state first.
type sysProcess struct {
	exitSeen bool // the child was seen exited, not yet reaped (see scanExits)
}

// reap collects the child's exit status and hands it to reaped, or to
// lostExit when someone else took it. Unless block is set it returns
// without doing anything when the child has not exited yet.
//
// Whatever the child left in its process group is killed first, while
// the zombie keeps the pid, and so the group's id, from being reused,
// where the system tells an exit without reaping (exitedPid). Where it
// cannot (macOS), the group is killed just after the reaping: a group
// with members left keeps its id all the same (POSIX reuses no pid that
// is the id of a live group), and an empty one has nobody to hit unless
// a new process takes the pid and leads a group of its own in that
// instant, which pids handed out in order make all but impossible.
func (p *Process) reap(block bool) {
	exited, ok, err := true, true, error(nil)
	if !p.exitSeen {
		exited, ok, err = exitedPid(p.pid)
	}
	switch {
	case err == unix.ECHILD:
		p.lostExit()
		return
	case !ok:
		// No look without reaping here: reap if it has exited, kill
		// its group after that.
		if p.wait4(false, true) || !block {
			return
		}
		_ = unix.Kill(-p.pid, unix.SIGKILL)
		_ = unix.Kill(p.pid, unix.SIGKILL)
		p.wait4(true, false)
		return
	case err != nil:
		p.m.log.Error("waiting on a child", "pid", p.pid, "error", err)
		return
	case !exited && !block:
		return
	}
	// The zombie, or the child, holds the pid and so the group id: what
	// the child left in its group goes with it, and a child waited for
	// (Teardown) is killed too, also one that left its group.
	_ = unix.Kill(-p.pid, unix.SIGKILL)
	if !exited {
		_ = unix.Kill(p.pid, unix.SIGKILL)
	}
	p.wait4(true, false)
}

// wait4 reaps the child, waiting for its exit when block is set, and
// reports whether it is done with it: reaped (killing its group after,
// with groupAfter), or its status lost.
func (p *Process) wait4(block, groupAfter bool) bool {
	opts := syscall.WNOHANG
	if block {
		opts = 0
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	var got int
	var err error
	for {
		got, err = syscall.Wait4(p.pid, &ws, opts, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case err == syscall.ECHILD:
		p.lostExit()
		return true
	case err != nil:
		p.m.log.Error("wait4 on a child", "pid", p.pid, "error", err)
		return false
	case got != p.pid:
		return false // not exited yet
	}
	if groupAfter {
		_ = unix.Kill(-p.pid, unix.SIGKILL)
	}
	e := &Exit{
		Pid:        p.pid,
		Duration:   time.Since(p.started),
		UserTime:   time.Duration(ru.Utime.Nano()),
		SystemTime: time.Duration(ru.Stime.Nano()),
		MaxRSS:     int64(ru.Maxrss) * maxRSSUnit,
		ExitCode:   ws.ExitStatus(),
	}
	if ws.Signaled() {
		e.ExitCode = -1
		e.Signal = ws.Signal()
		e.Core = ws.CoreDump()
	}
	p.reaped(e)
	return true
}

// releaseProc: the pid needs no closing.
func (p *Process) releaseProc() {}

// signal is Signal's part for a running child: the group, then the
// child, by pid; the child is ours, and not reaped. Without a /proc to
// walk, SIGKILL reaches the child and its group, not the descendants
// that left the group.
func (p *Process) signal(sig syscall.Signal) error {
	gone := p.exitSeen
	if !gone {
		exited, ok, err := exitedPid(p.pid)
		gone = ok && (exited || err != nil)
	}
	_ = unix.Kill(-p.pid, sig) // an empty group (the child left it) is no error
	if gone {
		return ErrProcessDone
	}
	if err := unix.Kill(p.pid, sig); err != nil {
		if err == unix.ESRCH {
			return ErrProcessDone
		}
		return fmt.Errorf("procman: signalling child %d: %w", p.pid, err)
	}
	return nil
}
