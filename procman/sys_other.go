//go:build !unix

package procman

import (
	"errors"
	"math"
	"syscall"
)

// This file is the backend where there is none yet: Setup fails with
// ErrUnsupported, so nothing else here is reached. The names are those
// that manager.go lists.

type sysManager struct{}

func (s *sysManager) init() {}

func (m *Manager) openSys() error                        { return ErrUnsupported }
func (m *Manager) closeSys(tornDown bool)                {}
func (m *Manager) wake() error                           { return ErrNotSetUp }
func (m *Manager) wait() ([]event, error)                { return nil, ErrUnsupported }
func (m *Manager) watch(fd int, id uint32, r role) error { return ErrUnsupported }
func (m *Manager) unwatch(fd int)                        {}
func (m *Manager) start(p *Process, spec Spec) error {
	return &StartError{Path: m.opts.path, Err: ErrUnsupported}
}

type sysProcess struct{}

func (p *Process) reap(block bool)                 {}
func (p *Process) releaseProc()                    {}
func (p *Process) signal(sig syscall.Signal) error { return ErrProcessDone }

func readFD(fd int, buf []byte) (int, error)     { return 0, ErrUnsupported }
func writeFD(fd int, b []byte) (int, error)      { return 0, ErrUnsupported }
func writevFD(fd int, iov [][]byte) (int, error) { return 0, ErrUnsupported }
func closeFD(fd int)                             {}

func (p *Process) takeFile() (int, error)         { return -1, ErrUnsupported }
func preadFull(fd int, b []byte, off int64) error { return ErrUnsupported }

// fileMin is never reached here: no payload goes by way of a file.
const fileMin = math.MaxInt

func pipeLen(fd int) (int, error) { return 0, ErrUnsupported }
func pipeHolds(fd int) bool       { return false }

// spliceMin is never reached off Linux: no payload is spliced.
const spliceMin = int(^uint(0) >> 1)

func writeSpliced(conn syscall.RawConn, payload []byte) (int, error) {
	return 0, errors.New("procman: vmsplice is Linux's")
}

func spliceRefused(err error) bool { return true }

func waitDrained(fd int) {}
