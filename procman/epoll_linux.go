//go:build linux && !procrastinate_portable

package procman

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

// sysManager is the Linux backend's part of a Manager: an epoll set that
// holds every child's pidfd and pipes and a wakeup eventfd. The set is
// itself waited on through the runtime's poller (epfile), so that the
// owner goroutine parks while it waits instead of holding a thread in
// epoll_wait.
type sysManager struct {
	epfd    int
	epfile  *os.File        // epfd, non-blocking, in the runtime's poller; nil before Setup
	epconn  syscall.RawConn // epfile's
	devnull int             // the children's stdin

	wakeMu     sync.RWMutex // guards evfd and wakeClosed against Setup, Teardown and the owner
	evfd       int          // -1 before Setup and after Teardown
	wakeClosed bool         // Teardown closed evfd

	events []unix.EpollEvent
	ready  []event
}

func (s *sysManager) init() { s.epfd, s.evfd, s.devnull = -1, -1, -1 }

// openSys opens the epoll set, the wakeup eventfd and /dev/null. The
// caller closes what it opened (closeSys) when it fails.
func (m *Manager) openSys() (err error) {
	if m.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("procman: epoll_create1: %w", err)
	}
	if err = unix.SetNonblock(m.epfd, true); err != nil {
		return fmt.Errorf("procman: setting the epoll set non-blocking: %w", err)
	}
	// From here on the file owns epfd: closeSys closes it through the file.
	m.epfile = os.NewFile(uintptr(m.epfd), "epoll")
	if m.epconn, err = m.epfile.SyscallConn(); err != nil {
		return fmt.Errorf("procman: the epoll set: %w", err)
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
	m.wakeClosed = tornDown
	m.wakeMu.Unlock()
	if m.epfile != nil {
		_ = m.epfile.Close()
		m.epfile, m.epconn, m.epfd = nil, nil, -1
	}
	for _, fd := range []*int{&m.epfd, &m.devnull} {
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
// returns the children's events. It takes the wakeup that
// ended the wait, if one did (see takeWakeup). A Wakeup sets woken, then
// writes evfd: a wait that began before the write sees evfd readable, and
// one that begins after it sees woken and does not sleep.
func (m *Manager) wait() ([]event, error) {
	var n int
	var err error
	if m.woken.Load() {
		n, err = m.epollNow()
	} else {
		n, err = m.epollPark()
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
// handler, say) or after it, writes evfd and sets woken, which the next
// wait looks at before it sleeps: that Step returns at once. One that found woken still set came before the
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

// epollNow takes the events that are ready, without waiting.
func (m *Manager) epollNow() (int, error) {
	for {
		n, err := unix.EpollWait(m.epfd, m.events, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("procman: epoll_wait: %w", err)
		}
		return n, nil
	}
}

// epollPark takes the events of epfd into m.events, waiting until there
// are some or the earliest deadline passes. The owner goroutine parks in
// the runtime's poller, as one that reads a socket does: no thread sleeps
// in epoll_wait for it, and when it wakes it runs on whichever thread has
// a P, instead of a thread that must win a P back after a system call.
func (m *Manager) epollPark() (int, error) {
	if t := m.nextDeadline(); t.IsZero() {
		_ = m.epfile.SetReadDeadline(time.Time{})
	} else if err := m.epfile.SetReadDeadline(t); err != nil {
		return 0, fmt.Errorf("procman: setting the epoll set's deadline: %w", err)
	}
	var n int
	var werr error
	err := m.epconn.Read(func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), m.events, 0)
		return werr != unix.EINTR && (n > 0 || werr != nil)
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("procman: waiting on the epoll set: %w", err)
	case werr != nil:
		return 0, fmt.Errorf("procman: epoll_wait: %w", werr)
	}
	return n, nil
}
