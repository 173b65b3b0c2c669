//go:build (linux && procrastinate_portable) || freebsd

package procman

import "syscall"

// procAttr starts a child in a process group of its own, and asks the
// kernel for pdeathsig (when not 0) when its parent dies.
func procAttr(pdeathsig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: pdeathsig}
}
