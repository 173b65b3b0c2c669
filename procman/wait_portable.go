//go:build unix && (!linux || procrastinate_portable)

package procman

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

// sysManager is the portable backend's part of a Manager. It needs no
// kernel feature beyond POSIX: every pipe end the manager watches is an
// os.File (a duplicate of the manager's descriptor) in the Go runtime's
// poller, with a goroutine of its own, a watcher, that parks there until
// the pipe is ready, posts itself and parks again until the manager has
// read or written what the pipe allowed. Exits come as SIGCHLD through
// os/signal, which names no child: the manager then looks at each of its
// own running children by pid (see scanExits), and never waits on any
// other. The owner sleeps in a select on one channel that the watchers,
// Wakeup and SIGCHLD all reach, so a Wakeup is a channel send.
type sysManager struct {
	devnull int // the children's stdin

	notify chan struct{}  // a watcher posted, or a Wakeup came; one token is enough
	sigs   chan os.Signal // SIGCHLD; one token is enough
	timer  *time.Timer    // for the earliest deadline

	mu       sync.Mutex // guards ready and life against the watchers and Wakeup
	ready    []*watcher // posted and not yet taken
	life     managerState
	watchers map[int]*watcher // by the manager's descriptor
	taken    []*watcher       // delivered in the last round: armed again by the next wait
	events   []event
	sorted   []event // events' spare, for stderrFirst
}

func (s *sysManager) init() { s.devnull = -1 }

// openSys opens /dev/null for the children's stdin and asks for SIGCHLD.
func (m *Manager) openSys() (err error) {
	if m.devnull, err = unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("procman: opening %s: %w", os.DevNull, err)
	}
	m.notify = make(chan struct{}, 1)
	m.sigs = make(chan os.Signal, 1)
	m.watchers = make(map[int]*watcher)
	signal.Notify(m.sigs, syscall.SIGCHLD)
	m.mu.Lock()
	m.life = managerSetUp
	m.mu.Unlock()
	return nil
}

// closeSys stops the signals and every watcher that is left, and closes
// /dev/null; tornDown says that Wakeup reports ErrTornDown from now on.
func (m *Manager) closeSys(tornDown bool) {
	if m.sigs != nil {
		signal.Stop(m.sigs)
	}
	if m.timer != nil {
		m.timer.Stop()
	}
	for fd := range m.watchers {
		m.unwatch(fd)
	}
	m.mu.Lock()
	m.life = managerNew
	if tornDown {
		m.life = managerTornDown
	}
	m.ready = nil
	m.mu.Unlock()
	if m.devnull >= 0 {
		unix.Close(m.devnull)
		m.devnull = -1
	}
}

// wake is Wakeup's part: a token on the channel the owner waits on.
func (m *Manager) wake() error {
	m.mu.Lock()
	life := m.life
	m.mu.Unlock()
	switch life {
	case managerTornDown:
		return ErrTornDown
	case managerNew:
		return ErrNotSetUp
	}
	select {
	case m.notify <- struct{}{}:
	default: // a token is pending: the wait ends anyway
	}
	return nil
}

// recheck is how long a wait lasts at most while a child whose message
// pipe has ended has not been reaped: its SIGCHLD should come at once,
// but a program may take it from the manager (signal.Reset, or
// signal.Ignore, after which the kernel reaps the child itself).
const recheck = 10 * time.Millisecond

// wait waits until a watcher posts, a Wakeup, a SIGCHLD after which a
// child of the manager's is found exited, or the earliest deadline, and
// returns the children's events: the watchers' roles, and rolePid for
// each child found exited. The watchers delivered in the round before
// are armed again first: the manager has read, or written, what their
// pipes allowed. A token that brings nothing (a watcher's post whose
// watcher an earlier round took, a SIGCHLD for another process's child)
// does not end the wait.
func (m *Manager) wait() ([]event, error) {
	for _, wt := range m.taken {
		wt.rearm()
	}
	clear(m.taken)
	m.taken = m.taken[:0]
	m.events = m.events[:0]
	for {
		deadline := m.nextDeadline()
		recheckAt := time.Time{}
		for _, p := range m.procs {
			if p.state == StateRunning && p.msgfd < 0 {
				recheckAt = time.Now().Add(recheck)
				break
			}
		}
		wake := deadline
		if !recheckAt.IsZero() && (wake.IsZero() || recheckAt.Before(wake)) {
			wake = recheckAt
		}
		now := m.woken.Load()
		var expired <-chan time.Time
		if !now && !wake.IsZero() {
			if d := time.Until(wake); d <= 0 {
				now = true
			} else {
				if m.timer == nil {
					m.timer = time.NewTimer(d)
				} else {
					m.timer.Reset(d)
				}
				expired = m.timer.C
			}
		}
		scan, timedOut := false, false
		if now {
			select {
			case <-m.notify:
			case <-m.sigs:
				scan = true
			default:
			}
		} else {
			select {
			case <-m.notify:
			case <-m.sigs:
				scan = true
			case <-expired:
				scan, timedOut = true, true
			}
			if expired != nil {
				m.timer.Stop()
			}
		}
		tracepoint.Mark(tracepoint.ManagerAwake)
		if !scan {
			select {
			case <-m.sigs:
				scan = true
			default:
			}
		}
		woken := m.woken.Swap(false)

		m.mu.Lock()
		ready := m.ready
		m.ready = nil
		m.mu.Unlock()
		for _, wt := range ready {
			if wt.stopped {
				continue
			}
			wt.armed = false
			m.taken = append(m.taken, wt)
			m.events = append(m.events, event{id: wt.id, role: wt.role})
		}
		m.stderrFirst()
		if scan {
			m.scanExits()
		}
		if len(m.events) > 0 || woken || now ||
			(timedOut && !deadline.IsZero() && !time.Now().Before(deadline)) {
			return m.events, nil
		}
	}
}

// stderrFirst orders the round's events so that a child's stderr is read
// before its messages, also when its stderr's watcher has not posted yet:
// what a child wrote on stderr before a message is in the pipe by the
// time the message is read, and is passed on before the message is
// delivered, as an epoll set, which reports pipes in the order they
// became ready, has it on Linux.
func (m *Manager) stderrFirst() {
	has := func(evs []event, id uint32) bool {
		for _, ev := range evs {
			if ev.id == id {
				return true
			}
		}
		return false
	}
	out := m.sorted[:0]
	for _, ev := range m.events {
		if ev.role == roleErr {
			out = append(out, ev)
		}
	}
	for _, ev := range m.events {
		if ev.role != roleMsg || has(out, ev.id) {
			continue
		}
		if p := m.procs[ev.id]; p != nil && p.errfd >= 0 {
			out = append(out, event{id: ev.id, role: roleErr})
		}
	}
	for _, ev := range m.events {
		if ev.role != roleErr {
			out = append(out, ev)
		}
	}
	m.events, m.sorted = out, m.events
}

// scanExits adds rolePid events for the running children that have
// exited, or whose exit the system cannot tell without reaping.
func (m *Manager) scanExits() {
	for _, p := range m.procs {
		if p.state != StateRunning {
			continue
		}
		exited, ok, err := exitedPid(p.pid)
		if exited || !ok || err != nil {
			p.exitSeen = exited
			m.events = append(m.events, event{id: p.id, role: rolePid})
		}
	}
}

// watch starts a watcher for fd, a non-blocking pipe end of the child
// with id: it posts when fd can be read, or written when r is roleInv.
func (m *Manager) watch(fd int, id uint32, r role) error {
	if m.watchers[fd] != nil {
		return nil
	}
	// A duplicate, for the runtime's poller to own and close: the
	// manager reads, writes and closes fd itself.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("procman: duplicating a pipe's descriptor: %w", err)
	}
	f := os.NewFile(uintptr(dup), "procman-pipe")
	if err := f.SetReadDeadline(time.Time{}); errors.Is(err, os.ErrNoDeadline) {
		// Not in the runtime's poller: its watcher would hold a thread,
		// and nothing could end its wait but the pipe.
		f.Close()
		return fmt.Errorf("procman: the runtime's poller does not take a pipe: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return fmt.Errorf("procman: %w", err)
	}
	wt := &watcher{m: m, f: f, rc: rc, id: id, role: r, arm: make(chan struct{}, 1)}
	m.watchers[fd] = wt
	go wt.run()
	wt.rearm()
	return nil
}

// unwatch stops fd's watcher, if it has one, and closes its duplicate.
func (m *Manager) unwatch(fd int) {
	if wt := m.watchers[fd]; wt != nil {
		delete(m.watchers, fd)
		wt.stop()
	}
}

// post puts wt on the ready list and ends the owner's wait. Watchers
// call it.
func (m *Manager) post(wt *watcher) {
	m.mu.Lock()
	if m.life != managerSetUp {
		m.mu.Unlock()
		return
	}
	m.ready = append(m.ready, wt)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// watcher is one pipe end in the runtime's poller, with the goroutine
// that waits until it is ready. Before it parks it looks at the pipe
// itself (poll with no timeout): what came while the manager read, or
// before the arm, is never missed, whatever the poller saw.
type watcher struct {
	m    *Manager
	f    *os.File
	rc   syscall.RawConn
	id   uint32
	role role
	arm  chan struct{} // a token lets the goroutine look again; closed by stop

	armed   bool // the goroutine looks, or may: the owner's
	stopped bool // the owner's
}

func (wt *watcher) run() {
	events := int16(unix.POLLIN)
	wait := wt.rc.Read
	if wt.role == roleInv {
		events, wait = unix.POLLOUT, wt.rc.Write
	}
	for range wt.arm {
		if err := wait(func(fd uintptr) bool { return ready(int(fd), events) }); err != nil {
			return // stopped: the file is closed
		}
		wt.m.post(wt)
	}
}

// rearm lets the watcher look again. It does nothing to one that looks
// already, or is stopped.
func (wt *watcher) rearm() {
	if wt.stopped || wt.armed {
		return
	}
	wt.armed = true
	wt.arm <- struct{}{}
}

// stop ends the watcher's goroutine and closes its file: the runtime
// closes the descriptor once the goroutine's wait has returned.
func (wt *watcher) stop() {
	if !wt.stopped {
		wt.stopped = true
		close(wt.arm)
		wt.f.Close()
	}
}

// ready reports whether fd, a pipe end, can be read (or written, with
// POLLOUT) without waiting: it holds bytes, or has room, or its other end
// is closed, which a read or a write must see too.
func ready(fd int, events int16) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0 // an error: the read or write will say it too
	}
}
