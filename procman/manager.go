package procman

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/childenv"
	"github.com/procrastinate-go/procrastinate/internal/tune"
)

// This file, process.go, read.go and stderr.go are the manager's portable
// core: the API, the process table, the handlers, the frames and their
// numbers, the deadlines, the write queue and the stderr capture. The
// kernel's part is a backend's, in files named for its mechanism, with
// build tags: on Linux epoll_linux.go (waiting), start_linux.go (starting),
// pidfd_linux.go (reaping, signalling) and pipe_linux.go (pipe I/O); on
// every other Unix, and on Linux built with the procrastinate_portable
// tag, the portable backend: wait_portable.go (the Go runtime's poller,
// SIGCHLD), start_portable.go, wait4_portable.go and pipe_portable.go;
// where there is no Unix, sys_other.go, where Setup fails with
// ErrUnsupported. A backend provides these unexported names:
//
//	sysManager, sysProcess     its state, embedded in Manager and Process;
//	                           sysManager has an init method that New calls
//	m.openSys() error          Setup's part: the wait set, the wakeup, stdin
//	m.closeSys(tornDown bool)  Teardown's part, and a failed Setup's
//	m.wake() error             Wakeup's part; any goroutine calls it
//	m.wait() ([]event, error)  wait until a child's event, a wake or
//	                           m.nextDeadline(); then clear m.woken
//	m.watch(fd, id, role) error, m.unwatch(fd)
//	                           report (or stop reporting) fd's readiness as
//	                           an event of that role for the child with id
//	m.start(p, spec) error     start the child: p.pid, p.started, the fds
//	                           p.msgfd, p.invfd, p.ctlfd, p.errfd, watched
//	p.reap(block bool)         take the exit status: p.reaped or p.lostExit
//	p.releaseProc()            forget the reaped child's handle
//	p.signal(sig) error        Signal's part for a running child
//	readFD, writeFD, writevFD, closeFD, pipeLen, pipeHolds
//	                           non-blocking pipe I/O; syscall.EAGAIN when
//	                           the pipe is empty or full

// Manager starts, watches, reads, feeds and reaps child processes. Create
// one with New, call Setup, then Step in a loop; Teardown ends it. See the
// package documentation for the rules of ownership.
type Manager struct {
	sysManager
	opts options
	log  Logger

	busy  atomic.Int32 // 1 while the owner goroutine is inside a call
	state managerState
	argv  []string
	woken atomic.Bool // a Wakeup came since Step last returned: later ones need do nothing

	nextID   uint32
	procs    map[uint32]*Process
	deadline time.Time // the caller's, from SetDeadline
	hungup   int       // processes waiting out their hangup grace
	stalled  int       // processes with an unfinished frame (stallAt set)
	finished []*Process
	dirty    []*Process // sent frames not yet written
}

// managerState is where a Manager is in its life.
type managerState uint8

// The states of a Manager, in order.
const (
	managerNew      managerState = iota // made by New
	managerSetUp                        // Setup succeeded
	managerTornDown                     // Teardown was called
)

// role is what an event of a backend's wait is about.
type role int32

// The roles of events.
const (
	roleWake role = iota // a Wakeup; backends keep it to themselves
	roleMsg              // the child's message pipe can be read
	roleInv              // the child's invocation pipe can be written
	rolePid              // the child may have exited
	roleErr              // the child's stderr pipe can be read
)

// event is one thing ready for the child with id.
type event struct {
	id   uint32
	role role
}

// New returns a Manager configured by opts. Call Setup before using it.
func New(opts ...Option) *Manager {
	m := &Manager{procs: make(map[uint32]*Process)}
	m.sysManager.init()
	m.opts = options{pipeSize: 1 << 20, hangupWait: 2 * time.Second, frameWait: 10 * time.Second, maxPayload: defaultMaxPayload}
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

// Setup opens what the manager waits with (on Linux an epoll set and a
// wakeup eventfd). It must be called once, before anything else; where
// the platform has no backend it returns ErrUnsupported. It also makes
// the Go runtime hold a reserve of idle OS threads (one for each P and
// each manager set up, and a few more), so that the program does not
// need a new thread once its children have taken every pid the system
// allows: a runtime that cannot make one ends the whole program.
func (m *Manager) Setup() (err error) {
	m.enter()
	defer m.leave()
	switch m.state {
	case managerSetUp:
		return errors.New("procman: Setup called twice")
	case managerTornDown:
		return ErrTornDown
	}
	if childenv.IsChild() {
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
	if err := m.openSys(); err != nil {
		m.closeSys(false)
		return err
	}
	m.state = managerSetUp
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
	if err := m.wake(); err != nil {
		m.woken.Store(false)
		return err
	}
	return nil
}

func init() {
	tune.Flush = func(m any) { m.(*Manager).flushNow() }
	tune.Queued = func(c any) bool { return c.(*Child).queued() > 0 }
	tune.Withdraw = func(p any, n uint64) error { return p.(*Process).withdraw(n) }
	tune.Withdrawals = func(c any) (<-chan struct{}, func() []uint64) {
		ch := c.(*Child)
		return ch.withdrawReady, ch.takeWithdrawn
	}
}

// SetDeadline makes Step return no later than t even when nothing happens;
// the zero time removes the deadline. This is for the caller's own timers
// (task deadlines, grace periods); Step never polls without one.
func (m *Manager) SetDeadline(t time.Time) { m.deadline = t }

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
	case managerNew:
		return ErrNotSetUp
	case managerTornDown:
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
	if err := childenv.Check(spec.Env); err != nil {
		return nil, fmt.Errorf("procman: Spec.Env: %w", err)
	}
	p := &Process{
		m: m, id: m.nextID + 1, name: spec.Name, h: h,
		msgfd: -1, invfd: -1, ctlfd: -1, errfd: -1, filefd: -1,
		tailMax: spec.StderrTail, errCopy: spec.StderrCopy,
	}
	if err := m.start(p, spec); err != nil {
		return nil, err
	}
	m.nextID = p.id
	p.state = StateRunning
	p.dec.Limit = m.opts.maxPayload
	m.procs[p.id] = p
	m.log.Debug("child started", "pid", p.pid, "name", spec.Name)
	if spec.Invocation != nil {
		// Written now, not at the next Step: the child needs it to start.
		_ = p.send(spec.Invocation)
		p.flush()
	}
	return p, nil
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
	m.flushDirty()
	events, err := m.wait()
	if err != nil {
		return err
	}
	for _, ev := range events {
		p := m.procs[ev.id]
		if p == nil || p.state != StateRunning {
			continue // finished earlier in this round
		}
		switch ev.role {
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

// nextDeadline is the earliest of the caller's deadline and the
// manager's own (hangup waits, frame waits); zero for none.
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
			_ = p.Signal(syscall.SIGKILL)
		}
		if !p.stallAt.IsZero() && !now.Before(p.stallAt) {
			if pipeHolds(p.msgfd) {
				// More of it waits, unread (the manager was late): not stalled.
				p.setStall(now.Add(m.opts.frameWait))
				continue
			}
			n := p.pending()
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

// callReply, callNote and callExited run a handler with the manager
// released, so that the handler may call the manager's methods.
func (m *Manager) callReply(p *Process, k Kind, payload []byte) {
	m.leave()
	defer m.enter()
	p.h.Reply(p, k, payload)
}

func (m *Manager) callNote(p *Process, k Kind, payload []byte) {
	m.leave()
	defer m.enter()
	p.h.Note(p, k, payload)
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
	if m.state == managerTornDown {
		return nil
	}
	if m.state == managerSetUp {
		removeManager()
	}
	// Torn down from here on: a handler told of an exit below that calls
	// CreateProcess (a strategy keeping N workers would) gets ErrTornDown
	// instead of starting a child that nothing would reap.
	m.state = managerTornDown
	for _, p := range m.procs {
		if p.state == StateRunning {
			_ = p.Signal(syscall.SIGKILL)
			p.reap(true)
		}
	}
	m.deliverFinished()
	m.closeSys(true)
	return nil
}
