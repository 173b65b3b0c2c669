//go:build linux

package procman

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
	"github.com/procrastinate-go/procrastinate/internal/wire"
)

// Manager starts, watches, reads, feeds and reaps child processes. Create
// one with New, call Setup, then Step in a loop; Teardown ends it. See the
// package documentation for the rules of ownership.
type Manager struct {
	opts options
	log  Logger

	busy atomic.Int32 // 1 while the owner goroutine is inside a call

	state   int // 0 new, 1 set up, 2 torn down
	epfd    int
	devnull int
	argv    []string

	wakeMu     sync.RWMutex // guards evfd, wakeClosed and poll against Setup, Teardown and the owner
	evfd       int          // -1 before Setup and after Teardown
	wakeClosed bool         // Teardown closed evfd
	woken      atomic.Bool  // a Wakeup came since Step last returned: later ones need do nothing

	// An idle manager (SetIdle) waits in the runtime's poller: poll is a
	// duplicate of outer, an epoll set registered there, and a Wakeup
	// that finds parkable set moves poll's read deadline into the past
	// instead of writing evfd. outer holds epfd only while the manager
	// parks (linked), so that a busy manager's events wake its own thread
	// and not also the poller's. See wait.
	idle       bool
	outer      int             // -1 without one
	linked     bool            // epfd is in outer
	linkFailed bool            // a link failed, and was logged
	poll       *os.File        // nil where the runtime's poller refused it: never idle
	pollConn   syscall.RawConn // poll's
	parkable   atomic.Bool     // the owner waits, or is about to, in the poller

	nextID   uint32
	procs    map[uint32]*Process
	events   []unix.EpollEvent
	deadline time.Time // the caller's, from SetDeadline
	hungup   int       // processes waiting out their hangup grace
	stalled  int       // processes with an unfinished frame (stallAt set)
	finished []*Process
	dirty    []*Process // sent frames not yet written
	scratch  [][]byte   // read buffers of finished children, for the next ones (keepScratch)
}

// Process is one child of a Manager. Its methods belong to the manager's
// goroutine.
type Process struct {
	m       *Manager
	id      uint32
	name    string
	h       Handler
	pid     int
	pidfd   int
	msgfd   int // read end of the message pipe; -1 once at EOF
	errfd   int // read end of the stderr pipe, when captured; else -1
	invfd   int // write end of the invocation pipe; -1 once closed
	ctlfd   int // write end of the control pipe, closed with invfd
	state   State
	started time.Time
	dec     wire.Decoder

	out        [][]byte // frames waiting to be written to invfd
	dirty      bool     // in Manager.dirty: sent to since the last flush
	closeAfter bool     // CloseInput was called: close once the queue is out
	outOff     int      // bytes of out[0] already written
	written    int64    // bytes written to invfd in all
	readNone   bool     // invfd broke with all that was written unread (see neverRead)
	watchOut   bool     // invfd is in the epoll set for EPOLLOUT
	invQueued  bool     // an invocation is in out (for the traced build's mark)
	sent       uint64   // invocations sent (queued); the last one's number
	answered   uint64   // invocations answered: the next answer's number is one more

	tail    []byte    // the end of what the child wrote to stderr
	tailMax int       // how much of it to keep
	errCopy io.Writer // where captured stderr goes as it comes; nil: nowhere

	hangupAt time.Time // when a child that hung up gets killed; zero: not hung up
	stallAt  time.Time // when a child that left a frame unfinished gets killed; zero: none is
	exitErr  error     // a protocol error or ErrHungUp, for Exit.Err
	exit     *Exit
}

// epoll event roles, kept in the event's Pad field beside the process id.
const (
	roleWake = iota
	roleMsg
	roleInv
	rolePid
	roleErr
)

// New returns a Manager configured by opts. Call Setup before using it.
func New(opts ...Option) *Manager {
	m := &Manager{epfd: -1, outer: -1, evfd: -1, devnull: -1, procs: make(map[uint32]*Process)}
	m.opts = options{pipeSize: 1 << 20, hangupWait: 2 * time.Second, frameWait: 10 * time.Second, maxPayload: wire.DefaultMaxPayload}
	for _, o := range opts {
		o.apply(&m.opts)
	}
	m.log = m.opts.logger
	if m.log == nil {
		m.log = nopLogger{}
	}
	return m
}

// enter marks the start of a call by the owner goroutine; it panics when
// another goroutine is inside one.
func (m *Manager) enter() {
	if !m.busy.CompareAndSwap(0, 1) {
		panic("procman: Manager used from two goroutines at once; only its owner goroutine may call it (Wakeup is the exception)")
	}
}

func (m *Manager) leave() { m.busy.Store(0) }

// Setup opens the manager's epoll set and wakeup eventfd. It must be called
// once, before anything else. It also makes the Go runtime hold a reserve
// of idle OS threads (one for each P and each manager set up, and a few
// more), so that the program does not need a new thread once its children
// have taken every pid the system allows: a runtime that cannot make one
// ends the whole program.
func (m *Manager) Setup() (err error) {
	m.enter()
	defer m.leave()
	switch m.state {
	case 1:
		return errors.New("procman: Setup called twice")
	case 2:
		return ErrTornDown
	}
	if IsChild() {
		// A program that forgot procrastinate.Main: this child runs its
		// main, and would start children that run it again, without
		// end. Its parent hears of it and fails the task with the reason.
		tellNoMain()
		return fmt.Errorf("procman: refusing to start children in a child process: %w", ErrNoMain)
	}
	if m.opts.path == "" {
		if m.opts.path, err = os.Executable(); err != nil {
			return fmt.Errorf("procman: finding the running executable: %w", err)
		}
	}
	// A child gets the parent's arguments: a program that checks its
	// flags before procrastinate.Main would otherwise stop every child
	// with its usage message.
	m.argv = append([]string(nil), os.Args...)
	if len(m.argv) == 0 {
		m.argv = []string{m.opts.path}
	}
	defer func() {
		if err != nil {
			m.closeFDs()
		}
	}()
	if m.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("procman: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("procman: eventfd: %w", err)
	}
	m.wakeMu.Lock()
	m.evfd = evfd
	m.wakeMu.Unlock()
	if m.devnull, err = unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("procman: opening %s: %w", os.DevNull, err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0, Pad: roleWake}
	if err = unix.EpollCtl(m.epfd, unix.EPOLL_CTL_ADD, m.evfd, &ev); err != nil {
		return fmt.Errorf("procman: adding the eventfd to epoll: %w", err)
	}
	if m.outer, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("procman: epoll_create1: %w", err)
	}
	if f, rc, err := pollable(m.outer); err == nil {
		m.wakeMu.Lock()
		m.poll, m.pollConn = f, rc
		m.wakeMu.Unlock()
	} else {
		m.log.Debug("the runtime's poller does not take an epoll fd; an idle manager waits in epoll_wait", "error", err)
	}
	m.events = make([]unix.EpollEvent, 128)
	m.state = 1
	addManager()
	return nil
}

// Wakeup makes a Step that sleeps, or the next one, return. It is safe from
// any goroutine, and cheap when a wakeup is already pending. After Teardown
// it returns ErrTornDown.
func (m *Manager) Wakeup() error {
	if m.woken.Swap(true) {
		return nil
	}
	m.wakeMu.RLock()
	defer m.wakeMu.RUnlock()
	if m.evfd < 0 {
		m.woken.Store(false)
		if m.wakeClosed {
			return ErrTornDown
		}
		return ErrNotSetUp
	}
	if m.parkable.Load() && m.poll != nil && m.poll.SetReadDeadline(longAgo) == nil {
		// The owner parks, or is about to, in the runtime's poller: it
		// becomes runnable on this goroutine's P, with no system call.
		return nil
	}
	one := [8]byte{1}
	for {
		_, err := unix.Write(m.evfd, one[:])
		switch err {
		case nil, unix.EAGAIN: // EAGAIN: the counter is full, a wakeup is pending anyway
			return nil
		case unix.EINTR:
			continue
		}
		m.woken.Store(false)
		return fmt.Errorf("procman: writing the wakeup eventfd: %w", err)
	}
}

// SetIdle tells the manager whether its owner is idle: nothing in flight
// and no child on its way out, so that what the next Step most likely
// waits for is a Wakeup, for new work. An idle manager's Step parks its
// goroutine in the Go runtime's poller, where a Wakeup makes it runnable
// on the waking goroutine's own P, with no system call, and it runs on
// that thread as soon as the waker waits (about 15 µs sooner than a thread
// woken on another CPU, on the machine of docs/performance.md). A busy
// manager's Step blocks its thread in epoll_wait: each child event then
// wakes that thread, where a park costs the runtime's scheduler two
// wake-ups and a spinning thread (about 100 µs more of the parent's CPU
// per task when a fresh process runs each task). The manager's epoll set
// is in the runtime's poller only while it parks, so in a program whose
// other goroutines wait there (a network server) a busy manager's events
// do not wake the poller's thread too. The default is busy. Like Step, it
// belongs to the owner goroutine.
func (m *Manager) SetIdle(idle bool) { m.idle = idle }

// SetDeadline makes Step return no later than t even when nothing happens;
// the zero time removes the deadline. This is for the caller's own timers
// (task deadlines, grace periods); Step never polls without one.
func (m *Manager) SetDeadline(t time.Time) { m.deadline = t }

// NeedsLockedThread reports whether the manager was made WithPdeathsig:
// then every call that starts children must come from a goroutine locked
// to its thread for as long as the children live (see WithPdeathsig).
func (m *Manager) NeedsLockedThread() bool { return m.opts.pdeathsig != 0 }

// ProcessCount returns the number of children the manager holds: started
// and not yet removable, that is, counted until their handler has been told
// of their exit.
func (m *Manager) ProcessCount() int { return len(m.procs) }

// Processes returns the children the manager holds, in no order.
func (m *Manager) Processes() []*Process {
	ps := make([]*Process, 0, len(m.procs))
	for _, p := range m.procs {
		ps = append(ps, p)
	}
	return ps
}

func (m *Manager) check() error {
	switch m.state {
	case 0:
		return ErrNotSetUp
	case 2:
		return ErrTornDown
	}
	return nil
}

// CreateProcess starts a child as spec says and reports what it sends and
// how it ends to h. It returns once the child is started; it never waits
// for the child to do anything. An error means no child was started and h
// will not be called; a *StartError says why the executable could not run.
func (m *Manager) CreateProcess(spec Spec, h Handler) (*Process, error) {
	m.enter()
	defer m.leave()
	if err := m.check(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("procman: CreateProcess with a nil Handler")
	}
	if err := CheckEnv(spec.Env); err != nil {
		return nil, fmt.Errorf("procman: Spec.Env: %w", err)
	}
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
			return nil, &StartError{Path: m.opts.path, Err: fmt.Errorf("creating the %s pipe: %w", pipe.name, err)}
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
			return nil, &StartError{Path: m.opts.path, Err: fmt.Errorf("creating the stderr pipe: %w", err)}
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
			Setpgid:   true,
			Pdeathsig: m.opts.pdeathsig,
			PidFD:     &pidfd,
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
		return nil, &StartError{Path: m.opts.path, Err: err}
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
		return nil, &StartError{Path: m.opts.path, Err: err}
	}
	m.nextID++
	p := &Process{
		m: m, id: m.nextID, name: spec.Name, h: h,
		pid: pid, pidfd: pidfd, msgfd: msg[0], invfd: inv[1], ctlfd: ctl[1], errfd: errfd,
		tailMax: spec.StderrTail, errCopy: spec.StderrCopy,
		state: StateRunning, started: start,
	}
	p.dec.Limit = m.opts.maxPayload
	m.procs[p.id] = p
	if err := m.watch(pidfd, p.id, rolePid, unix.EPOLLIN); err != nil {
		m.log.Error("watching a child's pidfd", "pid", pid, "error", err)
	}
	if err := m.watch(p.msgfd, p.id, roleMsg, unix.EPOLLIN); err != nil {
		m.log.Error("watching a child's message pipe", "pid", pid, "error", err)
	}
	if errfd >= 0 {
		if err := m.watch(errfd, p.id, roleErr, unix.EPOLLIN); err != nil {
			m.log.Error("watching a child's stderr pipe", "pid", pid, "error", err)
		}
	}
	m.log.Debug("child started", "pid", pid, "name", spec.Name)
	if spec.Invocation != nil {
		// Written now, not at the next Step: the child needs it to start.
		_ = p.send(wire.KindInvocation, spec.Invocation)
		p.flush()
	}
	return p, nil
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

func (m *Manager) watch(fd int, id uint32, role int32, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(id), Pad: role}
	return unix.EpollCtl(m.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (m *Manager) unwatch(fd int) {
	_ = unix.EpollCtl(m.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Step waits until a wakeup, a child event or the deadline set with
// SetDeadline, then reads every ready message, writes what the children
// can take, reaps every exited child and tells the handlers. It returns
// after one round; call it in a loop.
func (m *Manager) Step() error {
	m.enter()
	defer m.leave()
	if err := m.check(); err != nil {
		return err
	}
	m.flushDirty(!m.idle)
	n, err := m.wait()
	tracepoint.Mark(tracepoint.ManagerAwake)
	m.takeWakeup(m.events[:n])
	if err != nil {
		return err
	}
	for _, ev := range m.events[:n] {
		if ev.Pad == roleWake {
			continue
		}
		p := m.procs[uint32(ev.Fd)]
		if p == nil || p.state != StateRunning {
			continue // finished earlier in this round
		}
		switch ev.Pad {
		case roleMsg:
			p.read(false)
		case roleInv:
			p.flush()
		case roleErr:
			p.readStderr()
		case rolePid:
			p.reap(false)
		}
	}
	if m.hungup > 0 || m.stalled > 0 {
		m.killOverdue()
	}
	m.deliverFinished()
	return nil
}

// takeWakeup takes the wakeup that ended the wait, if one did, before the
// events are delivered: it reads the eventfd if it is among events, then
// clears woken. A Wakeup from then on, during the delivery (from a
// handler, say) or after it, acts (writes evfd, or moves poll's deadline)
// and sets woken, which the next wait looks at before it sleeps: that
// Step returns at once. One that found woken still set came before the
// clear, and what its caller did before it is seen once this Step
// returns. Reading before clearing matters: cleared first, a racing
// Wakeup's write could be swallowed by the read while woken stays set,
// and every later Wakeup would do nothing.
func (m *Manager) takeWakeup(events []unix.EpollEvent) {
	for _, ev := range events {
		if ev.Pad == roleWake {
			var buf [8]byte
			_, _ = unix.Read(m.evfd, buf[:])
			break
		}
	}
	m.woken.Store(false)
}

// wait waits until an event, a Wakeup, or the earliest deadline, and
// returns how many events it took into m.events: idle (SetIdle), parked in
// the runtime's poller; busy, blocking its thread in epoll_wait.
//
// A Wakeup sets woken, then looks at parkable; wait sets parkable (or
// clears it), then looks at woken. So either wait sees the Wakeup and does
// not sleep, or the Wakeup sees how wait sleeps: parkable, it moves poll's
// deadline into the past, after wait set it (the file's deadline calls
// are ordered); not, it writes evfd, which ends both waits.
func (m *Manager) wait() (int, error) {
	if m.idle && m.poll != nil && m.link() {
		return m.park()
	}
	m.unlink()
	m.parkable.Store(false)
	if m.woken.Load() {
		return m.epollNow()
	}
	return m.epollWait(m.timeout)
}

// timeout is epoll_wait's timeout for the earliest deadline, in whole
// milliseconds rounded up; -1 when there is none.
func (m *Manager) timeout() int {
	t := m.nextDeadline()
	if t.IsZero() {
		return -1
	}
	d := time.Until(t)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// park is wait for an idle manager: the goroutine parks in the runtime's
// poller until epfd is readable, with the deadline as poll's.
func (m *Manager) park() (int, error) {
	m.parkable.Store(true)
	t := m.nextDeadline()
	if err := m.poll.SetReadDeadline(t); err != nil {
		return 0, fmt.Errorf("procman: setting the wait's deadline: %w", err)
	}
	if (!t.IsZero() && !time.Now().Before(t)) || m.woken.Load() {
		return m.epollNow()
	}
	var n int
	var werr error
	err := m.pollConn.Read(func(uintptr) bool {
		// Called before the goroutine parks and after each time the
		// poller sees epfd readable: what is ready now ends the wait.
		n, werr = m.epollNow()
		return n > 0 || werr != nil
	})
	switch {
	case werr != nil:
		return 0, werr
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline, or a Wakeup, which is on a caller's way: what
		// else is ready, the next Step takes.
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("procman: waiting on the epoll fd: %w", err)
	}
	return n, nil
}

// link puts epfd in outer, the epoll set that the runtime's poller
// watches, so that its events end a park, and reports whether it is
// there. unlink takes it out: a busy manager's events then wake its own
// thread alone, not also the poller's (about 10 µs on a child's answer
// write, which had to wake a second thread on another CPU, when the
// program had a goroutine waiting in the poller).
func (m *Manager) link() bool {
	if m.linked {
		return true
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(m.outer, unix.EPOLL_CTL_ADD, m.epfd, &ev); err != nil && err != unix.EEXIST {
		if !m.linkFailed {
			// Said once: the next idle Steps try again, and wait busy
			// while it fails (ENOSPC: fs.epoll.max_user_watches).
			m.linkFailed = true
			m.log.Warn("the manager's epoll set could not join the runtime's poller; an idle manager waits in epoll_wait", "error", err)
		}
		return false
	}
	m.linked = true
	return true
}

func (m *Manager) unlink() {
	if !m.linked {
		return
	}
	if err := unix.EpollCtl(m.outer, unix.EPOLL_CTL_DEL, m.epfd, nil); err == nil || err == unix.ENOENT {
		m.linked = false
	}
	// On another error the set stays linked, as it is: its events then
	// wake the poller's thread too, which costs time, not correctness.
}

// epollNow takes the events that are ready, without waiting.
func (m *Manager) epollNow() (int, error) {
	return m.epollWait(func() int { return 0 })
}

// epollWait takes the events of epfd into m.events, waiting as long as
// timeout says, which is asked again after a signal interrupts the wait.
func (m *Manager) epollWait(timeout func() int) (int, error) {
	for {
		n, err := unix.EpollWait(m.epfd, m.events, timeout())
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("procman: epoll_wait: %w", err)
		}
		return n, nil
	}
}

// pollable returns a duplicate of fd that the runtime's poller watches.
func pollable(fd int) (*os.File, syscall.RawConn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("duplicating the epoll fd: %w", err)
	}
	// O_NONBLOCK is the open file's, shared with fd: epoll_wait does not
	// look at it.
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(dup), "procman-epoll")
	if err := f.SetReadDeadline(time.Time{}); err != nil { // ErrNoDeadline: not in the poller
		f.Close()
		return nil, nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

func (m *Manager) nextDeadline() time.Time {
	t := m.deadline
	if m.hungup > 0 || m.stalled > 0 {
		for _, p := range m.procs {
			for _, at := range [2]time.Time{p.hangupAt, p.stallAt} {
				if !at.IsZero() && (t.IsZero() || at.Before(t)) {
					t = at
				}
			}
		}
	}
	return t
}

// killOverdue kills the children whose hangup grace ran out, and those
// that left a frame unfinished for longer than the frame wait.
func (m *Manager) killOverdue() {
	now := time.Now()
	for _, p := range m.procs {
		if p.state != StateRunning {
			continue
		}
		if !p.hangupAt.IsZero() && !now.Before(p.hangupAt) {
			p.hangupAt = time.Time{}
			m.hungup--
			if p.exitErr == nil {
				p.exitErr = ErrHungUp
			}
			m.log.Warn("child kept running past the hangup wait; killing it", "pid", p.pid, "cause", p.exitErr)
			_ = p.Signal(unix.SIGKILL)
		}
		if !p.stallAt.IsZero() && !now.Before(p.stallAt) {
			if pipeHolds(p.msgfd) {
				// More of it waits, unread (the manager was late): not stalled.
				p.setStall(now.Add(m.opts.frameWait))
				continue
			}
			n := p.dec.Pending()
			p.setStall(time.Time{})
			m.log.Warn("protocol error: child left a frame unfinished; killing it", "pid", p.pid, "bytes", n)
			p.protocolError(fmt.Errorf("a frame stopped %d bytes into it: nothing more of it came for %v", n, m.opts.frameWait))
		}
	}
}

// setStall sets when p is killed for a frame it left unfinished; the zero
// time: never.
func (p *Process) setStall(at time.Time) {
	switch {
	case p.stallAt.IsZero() && !at.IsZero():
		p.m.stalled++
	case !p.stallAt.IsZero() && at.IsZero():
		p.m.stalled--
	}
	p.stallAt = at
}

// read reads what the child's message pipe holds and delivers whole frames.
// Unless final, it stops after a fair share so that one chatty child
// cannot starve the others (epoll reports the rest next round), and after
// a read that did not fill the buffer: the pipe was empty then, and the
// epoll set, level-triggered, reports what comes later. That saves a
// read(2) that would only say EAGAIN, a microsecond between a child's
// answer and the caller's wake-up.
//
// The read buffer comes from the manager's kept ones when the decoder has
// none, and goes back to them after a read that brought nothing for the
// handler (a frame that the manager took itself, or dropped) and left no
// partial frame: a child that waits for work holds no buffer. The manager keeps maxScratch
// buffers at most: a read that finds none left makes a new one.
func (p *Process) read(final bool) {
	const share = 4 << 20
	got, heard := 0, false
	p.m.recycleScratch(&p.dec)
	defer func() {
		switch {
		case p.msgfd < 0:
			// Closed: the end of the stream or a protocol error.
		case p.dec.Pending() == 0:
			p.setStall(time.Time{})
			if !heard {
				p.m.keepScratch(p.dec.Release())
			}
		case got > 0 && p.m.opts.frameWait > 0:
			// Part of a frame, and more of it than before.
			p.setStall(time.Now().Add(p.m.opts.frameWait))
		}
	}()
	for p.msgfd >= 0 && (final || got < share) {
		buf := p.dec.Buffer()
		n, err := unix.Read(p.msgfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			p.hangup(err)
			return
		}
		got += n
		drained := n < len(buf)
		p.dec.Advance(n)
		for {
			k, payload, ok, err := p.dec.Next()
			if err != nil {
				p.protocolError(err)
				return
			}
			if !ok {
				break
			}
			if k == wire.KindNoMain {
				p.noMain()
				continue
			}
			if k.Numbered() {
				if payload, ok = p.checkNumber(k, payload); !ok {
					if p.msgfd < 0 {
						return // a protocol error
					}
					continue
				}
			}
			heard = true
			p.m.callMessage(p, k, payload)
		}
		if drained && !final {
			return
		}
	}
}

// checkNumber checks the invocation number of a numbered frame of kind k
// (see wire.Kind.Numbered) against the invocation the child runs: the
// oldest sent and not answered. It returns the payload without the number
// and true when the frame belongs to that invocation, and counts it
// answered when the frame is terminal. A frame for an invocation already
// answered is late, a second answer or a task's forgery: it is dropped,
// and logged. A frame that is not numbered, or is for an invocation not
// yet due or never sent, breaks the protocol: the child is killed. So an
// answer reaches the handler only for its own invocation, once, in the
// order the invocations were sent.
func (p *Process) checkNumber(k wire.Kind, payload []byte) ([]byte, bool) {
	n, rest, err := wire.CutNumber(payload)
	due := p.answered + 1
	switch {
	case err != nil:
		p.protocolError(fmt.Errorf("%v frame: %w", k, err))
		return nil, false
	case n < due:
		p.m.log.Warn("protocol error: a child sent a frame for an invocation it had answered; dropped", "pid", p.pid, "name", p.name, "kind", k.String(), "invocation", n, "answered", p.answered)
		return nil, false
	case n > p.sent:
		p.protocolError(fmt.Errorf("%v frame for invocation %d, which was never sent (%d were)", k, n, p.sent))
		return nil, false
	case n > due:
		p.protocolError(fmt.Errorf("%v frame for invocation %d while invocation %d runs", k, n, due))
		return nil, false
	}
	if k.Terminal() {
		p.answered++
	}
	return rest, true
}

// noMain handles a child's word that it never called Serve (see
// ErrNoMain): it will take no task, and ErrNoMain is its exit's cause.
// Its own code may still say why on its stderr and exit; it is killed if
// it runs on past the hangup wait.
func (p *Process) noMain() {
	if p.exitErr == nil {
		p.exitErr = ErrNoMain
	}
	p.m.log.Warn("child did not call procrastinate.Main (procman.Serve); it will take no task", "pid", p.pid, "name", p.name)
	p.killLater()
}

// killLater has p killed after the hangup wait if it still runs then.
func (p *Process) killLater() {
	if p.state == StateRunning && p.hangupAt.IsZero() {
		p.hangupAt = time.Now().Add(p.m.opts.hangupWait)
		p.m.hungup++
	}
}

// hangup handles the end of the message pipe (err is a read error, or nil
// at end of file).
func (p *Process) hangup(err error) {
	p.closeMsg()
	if n := p.dec.Pending(); n > 0 {
		p.recordError(&ProtocolError{Pid: p.pid, Err: fmt.Errorf("the stream ended inside a frame, %d bytes into it: %w", n, io.ErrUnexpectedEOF)})
	} else if err != nil {
		p.recordError(&ProtocolError{Pid: p.pid, Err: fmt.Errorf("reading the message pipe: %w", err)})
	}
	// Usually the child is exiting and its pidfd fires next; if it is
	// still running after the grace period it is killed, whatever the
	// pipe's end said (a frame cut off in it is kept as the error).
	p.killLater()
}

func (p *Process) protocolError(err error) {
	p.closeMsg()
	p.recordError(&ProtocolError{Pid: p.pid, Err: err})
	if p.state == StateRunning {
		_ = p.Signal(unix.SIGKILL)
	}
}

func (p *Process) recordError(err error) {
	if p.exitErr == nil {
		p.exitErr = err
		p.m.log.Warn("protocol error", "pid", p.pid, "name", p.name, "error", err)
	}
}

func (p *Process) closeMsg() {
	p.setStall(time.Time{}) // no more of any frame will come
	if p.msgfd >= 0 {
		p.m.unwatch(p.msgfd)
		unix.Close(p.msgfd)
		p.msgfd = -1
	}
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

// reap collects the child's exit status. Unless block is set it returns
// without doing anything when the child has not exited yet.
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
	if p.exitErr == ErrHungUp && e.Signal != syscall.SIGKILL {
		// It closed its pipe because it was exiting, and the exit took
		// longer than the hangup wait to be reported (a loaded machine,
		// a large address space to tear down): the kill came too late to
		// matter, and the exit status says what happened.
		p.exitErr = nil
	}
	p.finish(e)
}

// lostExit finishes a child whose exit status someone else took: the
// program ignores SIGCHLD (the kernel then reaps children itself) or waits
// on any child. Its pidfd stays readable, so without this every Step would
// find it again and WaitForAllChildren would spin for ever.
func (p *Process) lostExit() {
	if p.exitErr == nil {
		p.exitErr = fmt.Errorf("procman: child %d was reaped by someone else and its exit status is lost (is SIGCHLD ignored, or does the program wait on any child?): %w", p.pid, unix.ECHILD)
	}
	p.m.log.Warn("a child's exit status was taken by someone else", "pid", p.pid, "name", p.name)
	p.finish(&Exit{Pid: p.pid, ExitCode: -1, Duration: time.Since(p.started)})
}

// finish records the end of a reaped child, reads what is left in its
// message pipe, closes its fds and queues it for its handler.
func (p *Process) finish(e *Exit) {
	p.state = StateStopped
	p.m.unwatch(p.pidfd)
	unix.Close(p.pidfd)
	p.pidfd = -1
	// Every byte the child wrote is in the pipe now: read to the end (or
	// to EAGAIN, when something it started still holds the pipe open).
	p.read(true)
	if n := p.dec.Pending(); n > 0 {
		p.recordError(&ProtocolError{Pid: p.pid, Err: fmt.Errorf("the child exited inside a frame, %d bytes into it: %w", n, io.ErrUnexpectedEOF)})
	}
	p.m.keepScratch(p.dec.Release())
	p.closeMsg()
	p.readStderr()
	p.closeStderr()
	if e.ExitCode != 0 || e.Signal != 0 {
		e.NeverRead = p.readNone || p.neverRead()
	}
	p.closeInput()
	if !p.hangupAt.IsZero() {
		p.hangupAt = time.Time{}
		p.m.hungup--
	}
	e.Err = p.exitErr
	e.Stderr = p.tail
	p.tail = nil
	p.exit = e
	p.m.finished = append(p.m.finished, p)
	if e.Signal != 0 {
		p.m.log.Debug("child exited", "pid", p.pid, "name", p.name, "signal", e.Signal.String(), "duration", e.Duration)
	} else {
		p.m.log.Debug("child exited", "pid", p.pid, "name", p.name, "code", e.ExitCode, "duration", e.Duration)
	}
}

// neverRead reports whether the child, which has exited or closed its end
// of the invocation pipe, read none of what was written to it: the pipe
// still holds all of it. The pipe keeps what its reader left while the
// manager's end is open.
func (p *Process) neverRead() bool {
	if p.invfd < 0 || p.written == 0 {
		return false
	}
	n, err := unix.IoctlGetInt(p.invfd, unix.TIOCINQ)
	return err == nil && int64(n) == p.written
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

// keepScratch keeps buf, the read buffer of a finished or waiting child's
// decoder, for another decoder (see recycleScratch), up to maxScratch of
// them.
func (m *Manager) keepScratch(buf []byte) {
	if buf != nil && len(m.scratch) < maxScratch {
		m.scratch = append(m.scratch, buf)
	}
}

// recycleScratch gives dec a kept read buffer, if there is one. A child
// per task would otherwise cost a new 64 KiB buffer each, zeroed on the
// way from its answer to its caller: on fresh heap pages, a page fault for
// every 4 KiB of it that the answer's read touched (traced: 4 faults, 8 µs,
// between a warm spare's answer and the manager's read of it).
func (m *Manager) recycleScratch(dec *wire.Decoder) {
	if n := len(m.scratch); n > 0 && dec.Recycle(m.scratch[n-1]) {
		m.scratch[n-1] = nil
		m.scratch = m.scratch[:n-1]
	}
}

// maxScratch is how many read buffers of finished children the manager
// keeps for the next ones: 256 KiB at most.
const maxScratch = 4

// deliverFinished removes the children reaped in this round and tells their
// handlers.
func (m *Manager) deliverFinished() {
	for len(m.finished) > 0 {
		p := m.finished[0]
		m.finished = m.finished[1:]
		p.state = StateRemovable
		delete(m.procs, p.id)
		m.callExited(p, p.exit)
	}
	m.finished = m.finished[:0]
}

// callMessage and callExited run a handler with the manager released, so
// that the handler may call the manager's methods.
func (m *Manager) callMessage(p *Process, k wire.Kind, payload []byte) {
	m.leave()
	defer m.enter()
	p.h.Message(p, k, payload)
}

func (m *Manager) callExited(p *Process, e *Exit) {
	m.leave()
	defer m.enter()
	p.h.Exited(p, e)
}

// KillProcesses sends sig to every child that has not exited yet, and to
// its process group (see Process.Signal). A child that is already gone is
// not an error.
func (m *Manager) KillProcesses(sig syscall.Signal) error {
	m.enter()
	defer m.leave()
	if err := m.check(); err != nil {
		return err
	}
	var errs []error
	for _, p := range m.procs {
		if err := p.Signal(sig); err != nil && err != ErrProcessDone {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WaitForAllChildren runs Step until the manager holds no child.
func (m *Manager) WaitForAllChildren() error {
	for m.ProcessCount() > 0 {
		if err := m.Step(); err != nil {
			return err
		}
	}
	return nil
}

// Teardown kills every child that is left (SIGKILL to it and its group), reaps it,
// tells its handler, and closes the manager's fds. After it returns no child
// of this manager is alive or a zombie. Calling it again does nothing.
func (m *Manager) Teardown() error {
	m.enter()
	defer m.leave()
	if m.state == 2 {
		return nil
	}
	if m.state == 1 {
		removeManager()
	}
	// Torn down from here on: a handler told of an exit below that calls
	// CreateProcess (a strategy keeping N workers would) gets ErrTornDown
	// instead of starting a child that nothing would reap.
	m.state = 2
	for _, p := range m.procs {
		if p.state == StateRunning {
			_ = p.Signal(unix.SIGKILL)
			p.reap(true)
		}
	}
	m.deliverFinished()
	m.closeFDs()
	m.scratch = nil
	return nil
}

func (m *Manager) closeFDs() {
	m.wakeMu.Lock()
	if m.evfd >= 0 {
		unix.Close(m.evfd)
		m.evfd = -1
	}
	if m.poll != nil {
		m.parkable.Store(false)
		m.poll.Close()
		m.poll, m.pollConn = nil, nil
	}
	m.wakeClosed = m.state == 2
	m.wakeMu.Unlock()
	for _, fd := range []*int{&m.epfd, &m.outer, &m.devnull} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// Pid returns the child's process id. It is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Name returns the Spec.Name the child was started with.
func (p *Process) Name() string { return p.name }

// State returns where the child is in its life.
func (p *Process) State() State { return p.state }

// Started returns when the child was started.
func (p *Process) Started() time.Time { return p.started }

// Exit returns how the child ended, or nil while it runs.
func (p *Process) Exit() *Exit { return p.exit }

// Send queues a frame for the child's invocation pipe. The next Step
// writes what the pipe takes before it sleeps, all frames sent to one child
// in one writev; the rest is written as the child reads. Send never blocks.
// The payload is kept until written and must not be changed. It returns
// ErrInputClosed once the pipe is closed (a write that finds the child gone
// drops what is queued; the child's exit tells the rest).
//
// A stop frame (wire.KindStop) is not queued: it goes at once to the
// child's control pipe, which a goroutine of the child watches while its
// task runs, so that the task's context ends without waiting for the
// task to read anything (see Child). It overtakes what is still queued,
// which is written all the same: a child waits for the rest of an
// invocation that has begun to reach it, even once stopped, and that
// wait ends only as this queue is written. What a stopped child takes
// after a stop is up to its loop (task.Serve takes at most one).
func (p *Process) Send(kind wire.Kind, payload []byte) error {
	p.m.enter()
	defer p.m.leave()
	if kind == wire.KindStop {
		if p.invfd < 0 || p.closeAfter {
			return ErrInputClosed
		}
		p.sendStop(false)
		return nil
	}
	return p.send(kind, payload)
}

func (p *Process) send(kind wire.Kind, payload []byte) error {
	if p.invfd < 0 || p.closeAfter {
		return ErrInputClosed
	}
	p.out = append(p.out, wire.AppendHeader(make([]byte, 0, wire.HeaderSize), kind, len(payload)))
	if kind == wire.KindInvocation {
		p.invQueued = true
		p.sent++ // the child numbers it so too, as it takes it
	}
	if len(payload) > 0 {
		p.out = append(p.out, payload)
	}
	if !p.dirty {
		p.dirty = true
		p.m.dirty = append(p.m.dirty, p)
	}
	return nil
}

// sendStop writes a stop frame to the control pipe: a goodbye (see
// CloseInput) when goodbye is set, else a plain stop. The pipe holds
// thousands of them, and the child needs one: a full pipe drops it.
func (p *Process) sendStop(goodbye bool) {
	frame := wire.AppendStop(make([]byte, 0, wire.HeaderSize+1), goodbye)
	for {
		_, err := unix.Write(p.ctlfd, frame)
		if err != unix.EINTR {
			if err != nil && err != unix.EAGAIN {
				p.m.log.Debug("writing a stop frame", "pid", p.pid, "error", err)
			}
			return
		}
	}
}

// Flush writes now what Send queued, as far as the pipes take it, instead
// of at the start of the next Step: for a caller about to do something slow
// (start a child) before it steps again. It is for an owner whose work is
// now in flight, which will wait busy (see SetIdle): when it writes, the
// manager's epoll set leaves the runtime's poller at once.
func (m *Manager) Flush() {
	m.enter()
	defer m.leave()
	m.flushDirty(true)
}

// flushDirty writes what was sent since the last round, one writev per
// child however many frames it was sent. With unlink, the manager's epoll
// set leaves the runtime's poller first (see link), for an owner that is
// about to wait busy: a child woken on this CPU by the write runs before
// this goroutine waits again, and its answer would otherwise also wake
// the poller's thread, an IPI that cost the child's answer write about
// 10 µs (traced). An owner that stays idle keeps the set in the poller,
// where its next wait needs it.
func (m *Manager) flushDirty(unlink bool) {
	if unlink && len(m.dirty) > 0 {
		m.unlink()
	}
	for i, p := range m.dirty {
		p.dirty = false
		p.flush()
		m.dirty[i] = nil
	}
	m.dirty = m.dirty[:0]
}

// flush writes queued frames until the pipe is full, then waits for
// EPOLLOUT.
func (p *Process) flush() {
	for len(p.out) > 0 && p.invfd >= 0 {
		iov := p.out
		if len(iov) > 64 {
			iov = iov[:64]
		}
		first := iov[0]
		iov[0] = first[p.outOff:]
		if p.invQueued {
			p.invQueued = false
			tracepoint.Mark(tracepoint.InvocationWrite)
		}
		n, err := unix.Writev(p.invfd, iov)
		iov[0] = first
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			// EPIPE: the child stopped reading or exited; what it did
			// not read is lost, and its exit will say the rest.
			p.m.log.Debug("child's invocation pipe broke", "pid", p.pid, "error", err)
			p.readNone = p.neverRead()
			p.closeInput()
			return
		}
		p.written += int64(n)
		n += p.outOff
		for n > 0 && len(p.out) > 0 && n >= len(p.out[0]) {
			n -= len(p.out[0])
			p.out[0] = nil
			p.out = p.out[1:]
		}
		p.outOff = n
	}
	want := len(p.out) > 0 && p.invfd >= 0
	if want != p.watchOut {
		if want {
			_ = p.m.watch(p.invfd, p.id, roleInv, unix.EPOLLOUT)
		} else if p.invfd >= 0 {
			p.m.unwatch(p.invfd)
		}
		p.watchOut = want
	}
	if len(p.out) == 0 {
		p.out, p.outOff = nil, 0
		if p.closeAfter {
			p.closeInput()
		}
	}
}

// CloseInput says goodbye to the child: once what was sent to it is
// written, a goodbye on the control pipe (a stop frame marked as one),
// then both pipes to the child closed. A child waiting for work sees the end and exits; a child with
// work in flight takes it as its parent's death and kills its group, as
// does a child whose pipes end without a goodbye (its parent died).
// Calling it twice does nothing.
func (p *Process) CloseInput() {
	p.m.enter()
	defer p.m.leave()
	if p.invfd < 0 || p.closeAfter {
		return
	}
	p.closeAfter = true
	p.flush() // closes the pipes once the queue is out
}

// closeInput closes the pipes to the child, after a stop frame when it
// says goodbye (CloseInput), without one when the child is gone.
func (p *Process) closeInput() {
	if p.invfd < 0 {
		return
	}
	if p.closeAfter && p.state == StateRunning {
		p.sendStop(true)
	}
	if p.watchOut {
		p.m.unwatch(p.invfd)
		p.watchOut = false
	}
	unix.Close(p.invfd)
	unix.Close(p.ctlfd)
	p.invfd, p.ctlfd = -1, -1
	p.out, p.outOff = nil, 0
}

// Signal sends sig to the child itself, through its pidfd, and to its
// process group, which the child leads (what its tasks started is there),
// so that a child that moved itself into another group is reached all
// the same. It returns ErrProcessDone when the signal reached no child:
// the child had exited (reaped or not; the group's members, if any are
// left, still get the signal).
//
// SIGKILL, which the child cannot act on, first goes to every descendant
// of the child's (see killDescendants), in its group or out of it: what
// its tasks started and left, a daemon among it, is the child's while the
// child, a subreaper, lives.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.state != StateRunning {
		return ErrProcessDone
	}
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

// childEnv is the parent's environment with the child cookie, the mark of
// a CPU time limit to come when cpuLimit is set, that of the nice level
// when nice is not 0, then extra. A variable that extra sets is set once,
// to its last value in extra: a Go child would take the first of two.
func childEnv(extra []string, cpuLimit bool, nice int) []string {
	env := os.Environ()
	var last map[string]int // the index in extra of the last entry for each of its variables
	if len(extra) > 0 {
		last = make(map[string]int, len(extra))
		for i, kv := range extra {
			last[envKey(kv)] = i
		}
	}
	out := make([]string, 0, len(env)+3+len(extra))
	for _, kv := range env {
		k := envKey(kv)
		if _, set := last[k]; set || reservedEnv(k) {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, cookieKey+"="+cookieValue)
	if cpuLimit {
		out = append(out, cpuLimitKey+"=1")
	}
	if nice != 0 {
		out = append(out, niceKey+"="+strconv.Itoa(nice))
	}
	for i, kv := range extra {
		if last[envKey(kv)] == i {
			out = append(out, kv)
		}
	}
	return out
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

// readStderr reads what the child wrote to its captured stderr, keeps the
// tail and passes it on to Spec.StderrCopy.
func (p *Process) readStderr() {
	if p.errfd < 0 {
		return
	}
	var buf [32 << 10]byte
	for {
		n, err := unix.Read(p.errfd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			if err != unix.EAGAIN {
				p.closeStderr() // end of file: the child and all it started are done with it
			}
			return
		}
		if p.errCopy != nil {
			_, _ = p.errCopy.Write(buf[:n])
		}
		p.tail = append(p.tail, buf[:n]...)
		if len(p.tail) > 2*p.tailMax {
			p.tail = append(p.tail[:0:0], p.tail[len(p.tail)-p.tailMax:]...)
		}
	}
}

func (p *Process) closeStderr() {
	if p.errfd < 0 {
		return
	}
	p.m.unwatch(p.errfd)
	unix.Close(p.errfd)
	p.errfd = -1
	if len(p.tail) > p.tailMax {
		p.tail = append(p.tail[:0:0], p.tail[len(p.tail)-p.tailMax:]...)
	}
}
