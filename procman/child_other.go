//go:build !unix

package procman

import (
	"errors"
	"syscall"
)

// parentDeathSignal: off Linux there is none.
func parentDeathSignal() syscall.Signal { return 0 }

// setParentDeathSignal: off Linux there is no such request.
func setParentDeathSignal(sig syscall.Signal) error {
	return errors.New("procman: no parent-death signal off Linux")
}

// cpuLimited: off Linux the child does not look (SIGXCPU keeps the
// runtime's default).
func cpuLimited() bool { return false }
