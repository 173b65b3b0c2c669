//go:build unix && !linux && !freebsd

package procman

import "syscall"

// procAttr starts a child in a process group of its own. This system has
// no parent-death signal: pdeathsig is not used.
func procAttr(pdeathsig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
