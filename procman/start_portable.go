//go:build unix && (!linux || procrastinate_portable)

package procman

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// start starts the child p as spec says, with its three pipes (and a
// fourth for its stderr when captured), and watches its message and
// stderr pipes. On success p holds its pid, its fds and when it started;
// on an error no child runs and nothing is left open.
//
// Resource limits are the child's to set on itself, as it starts and
// before it reads anything (see rlimitsKey): only Linux lets a process
// set another's (prlimit). What the child could not set is refused here,
// before it starts (see checkLimits). The nice level is set on the
// child's group from here, as on Linux.
func (m *Manager) start(p *Process, spec Spec) error {
	if err := checkLimits(spec.Rlimits); err != nil {
		return &StartError{Path: m.opts.path, Err: err}
	}
	var fds [10]int
	for i := range fds {
		fds[i] = -1
	}
	inv, msg, ctl, errp, file := fds[0:2], fds[2:4], fds[4:6], fds[6:8], fds[8:10]
	closeAll := func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	pipes := []struct {
		fds  []int
		name string
	}{{inv, "invocation"}, {msg, "message"}, {ctl, "control"}}
	if spec.StderrTail > 0 {
		pipes = append(pipes, struct {
			fds  []int
			name string
		}{errp, "stderr"})
	}
	for _, pp := range pipes {
		if err := pipeCloexec(pp.fds); err != nil {
			closeAll()
			return &StartError{Path: m.opts.path, Err: fmt.Errorf("creating the %s pipe: %w", pp.name, err)}
		}
	}
	if err := socketpairCloexec(file); err != nil {
		closeAll()
		return &StartError{Path: m.opts.path, Err: fmt.Errorf("creating the file socket: %w", err)}
	}
	// The parent's ends never block; the child's ends do.
	for _, fd := range []int{inv[1], msg[0], ctl[1], errp[0], file[0]} {
		if fd >= 0 {
			_ = unix.SetNonblock(fd, true)
		}
	}
	stdout, stderr := uintptr(1), uintptr(2)
	if spec.Stdout != nil {
		stdout = spec.Stdout.Fd()
	}
	if spec.Stderr != nil {
		stderr = spec.Stderr.Fd()
	}
	if errp[1] >= 0 {
		stderr = uintptr(errp[1])
	}
	env := childEnv(spec.Env, limitsCPU(spec.Rlimits), spec.Nice)
	if len(spec.Rlimits) > 0 {
		env = append(env, rlimitsKey+"="+encodeRlimits(spec.Rlimits))
	}
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: []uintptr{uintptr(m.devnull), stdout, stderr, uintptr(inv[0]), uintptr(msg[1]), uintptr(ctl[0]), uintptr(file[1])},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	start := time.Now()
	pid, _, err := syscall.StartProcess(m.opts.path, m.argv, attr)
	for _, fd := range []*int{&inv[0], &msg[1], &ctl[0], &errp[1], &file[1]} {
		if *fd >= 0 {
			unix.Close(*fd) // the child's ends
			*fd = -1
		}
	}
	if err != nil {
		closeAll()
		m.log.Warn("child failed to start", "path", m.opts.path, "error", err)
		return &StartError{Path: m.opts.path, Err: err}
	}
	if spec.Nice != 0 {
		// PRIO_PGRP reaches every process of the group; on Linux, every
		// thread too, where PRIO_PROCESS would reach the main thread alone.
		if err := setGroupPriority(unix.PRIO_PGRP, pid, spec.Nice); err != nil {
			// A child that would run at the wrong priority must not run
			// at all. It is ours and not reaped: its pid is its own.
			_ = unix.Kill(-pid, unix.SIGKILL)
			_ = unix.Kill(pid, unix.SIGKILL)
			var ws syscall.WaitStatus
			for {
				if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
					break
				}
			}
			closeAll()
			err = fmt.Errorf("setting the nice level to %d: %w", spec.Nice, err)
			m.log.Warn("child's nice level could not be set; it was killed", "pid", pid, "error", err)
			return &StartError{Path: m.opts.path, Err: err}
		}
	}
	p.pid, p.started = pid, start
	p.msgfd, p.invfd, p.ctlfd, p.errfd, p.filefd = msg[0], inv[1], ctl[1], errp[0], file[0]
	if err := m.watch(p.msgfd, p.id, roleMsg); err != nil {
		m.log.Error("watching a child's message pipe", "pid", pid, "error", err)
	}
	if p.errfd >= 0 {
		if err := m.watch(p.errfd, p.id, roleErr); err != nil {
			m.log.Error("watching a child's stderr pipe", "pid", pid, "error", err)
		}
	}
	return nil
}

// setGroupPriority is unix.Setpriority; a test puts one that does nothing
// in its place, to see the child set its nice level alone.
var setGroupPriority = unix.Setpriority

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

// pipeCloexec makes a pipe whose ends are both close-on-exec, so that no
// other child started meanwhile inherits them. Not every system has
// pipe2: the fork lock keeps a start from coming between pipe and the
// flags, as os.Pipe does.
func pipeCloexec(p []int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(p); err != nil {
		p[0], p[1] = -1, -1
		return err
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return nil
}

// socketpairCloexec makes the file socket (see frameFile), a pair of
// datagram sockets whose ends are both close-on-exec: each datagram the
// child sends carries one descriptor, and the parent takes one for each
// file frame.
func socketpairCloexec(p []int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	p[0], p[1] = fds[0], fds[1]
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return nil
}
