//go:build linux && !procrastinate_portable

package procman

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// start starts the child p as spec says, with its three pipes (and a
// fourth for its stderr when captured), and watches them and its pidfd.
// On success p holds its pid, its fds and when it started; on an error no
// child runs and nothing is left open.
func (m *Manager) start(p *Process, spec Spec) error {
	// Three pipes: invocations and control frames to the child, messages
	// from it. closePipes closes those that were opened.
	inv, msg, ctl := [2]int{-1, -1}, [2]int{-1, -1}, [2]int{-1, -1}
	closePipes := func() {
		for _, fd := range []int{inv[0], inv[1], msg[0], msg[1], ctl[0], ctl[1]} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	for _, pipe := range []struct {
		fds  *[2]int
		name string
	}{{&inv, "invocation"}, {&msg, "message"}, {&ctl, "control"}} {
		if err := unix.Pipe2(pipe.fds[:], unix.O_CLOEXEC); err != nil {
			*pipe.fds = [2]int{-1, -1}
			closePipes()
			return &StartError{Path: m.opts.path, Err: fmt.Errorf("creating the %s pipe: %w", pipe.name, err)}
		}
	}
	// The parent's ends never block; the child's ends do.
	_ = unix.SetNonblock(inv[1], true)
	_ = unix.SetNonblock(msg[0], true)
	_ = unix.SetNonblock(ctl[1], true)
	if m.opts.pipeSize > 0 {
		_, _ = unix.FcntlInt(uintptr(msg[0]), unix.F_SETPIPE_SZ, m.opts.pipeSize)
	}
	stdout, stderr := uintptr(1), uintptr(2)
	if spec.Stdout != nil {
		stdout = spec.Stdout.Fd()
	}
	if spec.Stderr != nil {
		stderr = spec.Stderr.Fd()
	}
	errfd := -1
	if spec.StderrTail > 0 {
		var errp [2]int
		if err := unix.Pipe2(errp[:], unix.O_CLOEXEC); err != nil {
			closePipes()
			return &StartError{Path: m.opts.path, Err: fmt.Errorf("creating the stderr pipe: %w", err)}
		}
		_ = unix.SetNonblock(errp[0], true)
		errfd, stderr = errp[0], uintptr(errp[1])
		defer unix.Close(errp[1])
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   childEnv(spec.Env, limitsCPU(spec.Rlimits), spec.Nice),
		Files: []uintptr{uintptr(m.devnull), stdout, stderr, uintptr(inv[0]), uintptr(msg[1]), uintptr(ctl[0])},
		Sys: &syscall.SysProcAttr{
			Setpgid: true,
			PidFD:   &pidfd,
		},
	}
	start := time.Now()
	pid, _, err := syscall.StartProcess(m.opts.path, m.argv, attr)
	for _, fd := range []*int{&inv[0], &msg[1], &ctl[0]} {
		unix.Close(*fd) // the child's ends
		*fd = -1
	}
	if err == nil && pidfd < 0 {
		// Go started it but the kernel gave no pidfd (Linux before 5.3):
		// without one it could not be reaped safely.
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		err = ErrUnsupported
	}
	if err != nil {
		closePipes()
		if errfd >= 0 {
			unix.Close(errfd)
		}
		m.log.Warn("child failed to start", "path", m.opts.path, "error", err)
		return &StartError{Path: m.opts.path, Err: err}
	}
	if err := applyLimits(pid, spec); err != nil {
		// A child that would run unbounded must not run at all.
		_ = unix.Kill(-pid, unix.SIGKILL)
		var info siginfo
		_ = waitid(pidfd, &info, unix.WEXITED, nil)
		unix.Close(pidfd)
		closePipes()
		if errfd >= 0 {
			unix.Close(errfd)
		}
		m.log.Warn("child's limits could not be set; it was killed", "pid", pid, "error", err)
		return &StartError{Path: m.opts.path, Err: err}
	}
	p.pid, p.pidfd, p.started = pid, pidfd, start
	p.msgfd, p.invfd, p.ctlfd, p.errfd = msg[0], inv[1], ctl[1], errfd
	if err := m.watch(pidfd, p.id, rolePid); err != nil {
		m.log.Error("watching a child's pidfd", "pid", pid, "error", err)
	}
	if err := m.watch(p.msgfd, p.id, roleMsg); err != nil {
		m.log.Error("watching a child's message pipe", "pid", pid, "error", err)
	}
	if errfd >= 0 {
		if err := m.watch(errfd, p.id, roleErr); err != nil {
			m.log.Error("watching a child's stderr pipe", "pid", pid, "error", err)
		}
	}
	return nil
}

// setGroupPriority is unix.Setpriority; a test puts one that does nothing
// in its place, to see the child set its nice level alone.
var setGroupPriority = unix.Setpriority

// applyLimits sets spec's resource limits and nice level on a child that
// has not read its first invocation yet.
func applyLimits(pid int, spec Spec) error {
	for _, l := range spec.Rlimits {
		if err := unix.Prlimit(pid, l.Resource, &unix.Rlimit{Cur: l.Cur, Max: l.Max}, nil); err != nil {
			return fmt.Errorf("setting resource limit %d to %d/%d: %w", l.Resource, l.Cur, l.Max, err)
		}
	}
	if spec.Nice != 0 {
		// PRIO_PGRP reaches every thread of every process in the group;
		// PRIO_PROCESS would reach only the main thread.
		if err := setGroupPriority(unix.PRIO_PGRP, pid, spec.Nice); err != nil {
			return fmt.Errorf("setting the nice level to %d: %w", spec.Nice, err)
		}
	}
	return nil
}

// limitsCPU reports whether limits hold a CPU time limit, which the child
// is told of as it starts (see cpuLimitKey).
func limitsCPU(limits []Rlimit) bool {
	for _, l := range limits {
		if l.Resource == unix.RLIMIT_CPU && l.Cur != unix.RLIM_INFINITY {
			return true
		}
	}
	return false
}
