//go:build linux && !procrastinate_portable

package procman

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

// sysManager is the Linux backend's part of a Manager: an epoll set that
// holds every child's pidfd and pipes and a wakeup eventfd, and a second
// epoll set in the runtime's poller for an idle manager (see wait).
type sysManager struct {
	epfd    int
	devnull int // the children's stdin

	wakeMu     sync.RWMutex // guards evfd, wakeClosed and poll against Setup, Teardown and the owner
	evfd       int          // -1 before Setup and after Teardown
	wakeClosed bool         // Teardown closed evfd

	// An idle manager (SetIdle) waits in the runtime's poller: poll is a
	// duplicate of outer, an epoll set registered there, and a Wakeup
	// that finds parkable set moves poll's read deadline into the past
	// instead of writing evfd. outer holds epfd only while the manager
	// parks (linked), so that a busy manager's events wake its own thread
	// and not also the poller's. See wait.
	outer      int             // -1 without one
	linked     bool            // epfd is in outer
	linkFailed bool            // a link failed, and was logged
	poll       *os.File        // nil where the runtime's poller refused it: never idle
	pollConn   syscall.RawConn // poll's
	parkable   atomic.Bool     // the owner waits, or is about to, in the poller

	events []unix.EpollEvent
	ready  []event
}

func (s *sysManager) init() { s.epfd, s.outer, s.evfd, s.devnull = -1, -1, -1, -1 }

// openSys opens the epoll sets, the wakeup eventfd and /dev/null. The
// caller closes what it opened (closeSys) when it fails.
func (m *Manager) openSys() (err error) {
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0, Pad: int32(roleWake)}
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
	m.ready = make([]event, 0, 128)
	return nil
}

// closeSys closes what openSys opened; tornDown says that Wakeup reports
// ErrTornDown from now on.
func (m *Manager) closeSys(tornDown bool) {
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
	m.wakeClosed = tornDown
	m.wakeMu.Unlock()
	for _, fd := range []*int{&m.epfd, &m.outer, &m.devnull} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// wake is Wakeup's part: it makes the owner's wait return.
func (m *Manager) wake() error {
	m.wakeMu.RLock()
	defer m.wakeMu.RUnlock()
	if m.evfd < 0 {
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
		return fmt.Errorf("procman: writing the wakeup eventfd: %w", err)
	}
}

// watch adds fd, of the child with id, to the epoll set: for reading, or
// for writing when r is roleInv.
func (m *Manager) watch(fd int, id uint32, r role) error {
	events := uint32(unix.EPOLLIN)
	if r == roleInv {
		events = unix.EPOLLOUT
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(id), Pad: int32(r)}
	return unix.EpollCtl(m.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (m *Manager) unwatch(fd int) {
	_ = unix.EpollCtl(m.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// wait waits until an event, a Wakeup, or the earliest deadline, and
// returns the children's events: idle (SetIdle), parked in the runtime's
// poller; busy, blocking its thread in epoll_wait. It takes the wakeup
// that ended the wait, if one did (see takeWakeup).
//
// A Wakeup sets woken, then looks at parkable; wait sets parkable (or
// clears it), then looks at woken. So either wait sees the Wakeup and does
// not sleep, or the Wakeup sees how wait sleeps: parkable, it moves poll's
// deadline into the past, after wait set it (the file's deadline calls
// are ordered); not, it writes evfd, which ends both waits.
func (m *Manager) wait() ([]event, error) {
	var n int
	var err error
	switch {
	case m.idle && m.poll != nil && m.link():
		n, err = m.park()
	default:
		m.unlink()
		m.parkable.Store(false)
		if m.woken.Load() {
			n, err = m.epollNow()
		} else {
			n, err = m.epollWait(m.timeout)
		}
	}
	tracepoint.Mark(tracepoint.ManagerAwake)
	m.takeWakeup(m.events[:n])
	m.ready = m.ready[:0]
	for _, ev := range m.events[:n] {
		if role(ev.Pad) != roleWake {
			m.ready = append(m.ready, event{id: uint32(ev.Fd), role: role(ev.Pad)})
		}
	}
	return m.ready, err
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
		if role(ev.Pad) == roleWake {
			var buf [8]byte
			_, _ = unix.Read(m.evfd, buf[:])
			break
		}
	}
	m.woken.Store(false)
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
// thread alone, not also the poller's (a child's answer write would
// otherwise wake a second thread on another CPU when the program has a
// goroutine waiting in the poller).
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
