//go:build !linux

package procman

import (
	"errors"
	"syscall"
)

// pipeHolds reports whether the pipe at fd has bytes waiting to be read;
// off Linux it does not know, and says no.
func pipeHolds(fd int) bool { return false }

// spliceMin is never reached off Linux: no payload is spliced.
const spliceMin = int(^uint(0) >> 1)

func writeSpliced(conn syscall.RawConn, payload []byte) (int, error) {
	return 0, errors.New("procman: vmsplice is Linux's")
}

func spliceRefused(err error) bool { return true }

func waitDrained(fd int) {}

// parentDeathSignal: off Linux there is none.
func parentDeathSignal() syscall.Signal { return 0 }

// setParentDeathSignal: off Linux there is no such request.
func setParentDeathSignal(sig syscall.Signal) error {
	return errors.New("procman: no parent-death signal off Linux")
}

// setGroupNice: off Linux no child runs.
func setGroupNice(nice int) {}

// cpuLimited: off Linux the child does not look (SIGXCPU keeps the
// runtime's default).
func cpuLimited() bool { return false }
