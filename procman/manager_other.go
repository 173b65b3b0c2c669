//go:build !linux

package procman

import (
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
)

// Manager starts and watches child processes. On this platform it cannot:
// Setup returns ErrUnsupported, and every other call ErrNotSetUp. The
// mechanism needs Linux's pidfds, epoll and eventfd (see manager_linux.go).
type Manager struct{}

// Process is one child of a Manager. No value of it exists on this
// platform.
type Process struct{}

// New returns a Manager; on this platform its Setup fails.
func New(opts ...Option) *Manager { return &Manager{} }

// Setup returns ErrUnsupported on this platform.
func (m *Manager) Setup() error { return ErrUnsupported }

// Wakeup returns ErrNotSetUp on this platform.
func (m *Manager) Wakeup() error { return ErrNotSetUp }

// SetDeadline does nothing on this platform.
func (m *Manager) SetDeadline(t time.Time) {}

// SetIdle does nothing on this platform.
func (m *Manager) SetIdle(idle bool) {}

// NeedsLockedThread is always false on this platform.
func (m *Manager) NeedsLockedThread() bool { return false }

// ProcessCount is always 0 on this platform.
func (m *Manager) ProcessCount() int { return 0 }

// Processes is always empty on this platform.
func (m *Manager) Processes() []*Process { return nil }

// CreateProcess returns ErrNotSetUp on this platform.
func (m *Manager) CreateProcess(spec Spec, h Handler) (*Process, error) { return nil, ErrNotSetUp }

// Step returns ErrNotSetUp on this platform.
func (m *Manager) Step() error { return ErrNotSetUp }

// KillProcesses returns ErrNotSetUp on this platform.
func (m *Manager) KillProcesses(sig syscall.Signal) error { return ErrNotSetUp }

// WaitForAllChildren returns at once on this platform.
func (m *Manager) WaitForAllChildren() error { return nil }

// Flush does nothing on this platform.
func (m *Manager) Flush() {}

// Teardown does nothing on this platform.
func (m *Manager) Teardown() error { return nil }

// Pid returns 0.
func (p *Process) Pid() int { return 0 }

// Name returns "".
func (p *Process) Name() string { return "" }

// State returns StateNew.
func (p *Process) State() State { return StateNew }

// Started returns the zero time.
func (p *Process) Started() time.Time { return time.Time{} }

// Exit returns nil.
func (p *Process) Exit() *Exit { return nil }

// Send returns ErrInputClosed.
func (p *Process) Send(kind wire.Kind, payload []byte) error { return ErrInputClosed }

// CloseInput does nothing.
func (p *Process) CloseInput() {}

// Signal returns ErrProcessDone: there is no child to reach.
func (p *Process) Signal(sig syscall.Signal) error { return ErrProcessDone }
