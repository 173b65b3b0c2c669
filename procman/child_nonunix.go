//go:build !unix

package procman

import (
	"errors"
	"syscall"
)

// errNoChildren says that a process cannot be a child here.
var errNoChildren = errors.New("procman: child processes need a Unix system")

// sigXCPU stands for the signal of a CPU time limit, which this system
// does not send.
const sigXCPU = syscall.Signal(24)

func isPipe(fd int) bool                                { return false }
func closeOnExec(fd int)                                {}
func isSocket(fd int) bool                              { return false }
func sendFD(sock, fd int) error                         { return errNoChildren }
func setNonblock(fd int) error                          { return errNoChildren }
func processGroup() int                                 { return 0 }
func killGroup(pgid int, sig syscall.Signal) error      { return errNoChildren }
func killSelf(sig syscall.Signal) error                 { return errNoChildren }
func closeInherited()                                   {}
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }

type rawWriter struct{ conn syscall.RawConn }

func (w *rawWriter) Write(p []byte) (int, error) { return 0, errNoChildren }
