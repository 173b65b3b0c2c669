//go:build freebsd && (amd64 || arm64 || riscv64)

package command

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The child that runs commands makes itself a reaper (procctl
// PROC_REAP_ACQUIRE) before its first command: a process whose parent
// died is its child from then on, whatever group or session it moved to,
// and the kernel keeps, for each descendant, which child of the reaper it
// descends from (its subtree). What a command left is its subtree: it is
// killed with PROC_REAP_KILL, and each process of it reaped by its pid
// once it is this process's child. Other children (those of os/exec in
// the same program) are of other subtrees, and neither killed nor reaped.

// adoptsLeftovers says that what a command leaves is found and ended
// here, also out of its group.
const adoptsLeftovers = true

// maxLeftovers bounds a look: a fork bomb must not hold a call up for
// ever.
const maxLeftovers = 1 << 14

// The procctl commands and flags of <sys/procctl.h>.
const (
	procReapAcquire = 2
	procReapStatus  = 4
	procReapGetpids = 5
	procReapKill    = 6

	reaperPidinfoValid = 0x1
	reaperPidinfoChild = 0x2
	reaperKillSubtree  = 0x2
)

// The structures of <sys/procctl.h>.
type (
	reaperStatus struct {
		flags, children, descendants uint32
		reaper, pid                  int32
		_                            [15]uint32
	}
	reaperPidinfo struct {
		pid, subtree int32
		flags        uint32
		_            [15]uint32
	}
	reaperPids struct {
		count uint32
		_     [15]uint32
		pids  *reaperPidinfo
	}
	reaperKill struct {
		sig     int32
		flags   uint32
		subtree int32
		killed  uint32
		fpid    int32
		_       [15]uint32
	}
)

var reaper struct {
	once sync.Once
	ok   bool
}

// acquireReaper makes this process a reaper, once. An error (a jail that
// forbids it) leaves what commands leave outside their group to init.
func acquireReaper() {
	reaper.once.Do(func() {
		err := procctl(procReapAcquire, nil)
		reaper.ok = err == nil || err == unix.EBUSY // EBUSY: one already
	})
}

// endSubtree kills what the command pid, exited and not reaped, left:
// every process of its subtree but itself. It reaps each once it is this
// process's child, and reports how many it reaped.
func endSubtree(pid int) int {
	if !reaper.ok {
		return 0
	}
	ended := 0
	for round := 0; round < 8; round++ {
		rk := reaperKill{sig: int32(unix.SIGKILL), flags: reaperKillSubtree, subtree: int32(pid)}
		_ = procctl(procReapKill, unsafe.Pointer(&rk)) // ESRCH: none left alive
		kids := adopted(pid)
		if len(kids) == 0 {
			return ended
		}
		// Each has been killed: the wait is short. A grandchild comes
		// to this process as its parent exits, and to the next round.
		for _, kid := range kids {
			var ws unix.WaitStatus
			for {
				_, err := unix.Wait4(kid, &ws, 0, nil)
				if err != unix.EINTR {
					break
				}
			}
			ended++
		}
	}
	return ended
}

// adopted returns this process's children in the subtree of pid, but
// pid itself.
func adopted(pid int) []int {
	var st reaperStatus
	if procctl(procReapStatus, unsafe.Pointer(&st)) != nil || st.descendants == 0 {
		return nil
	}
	infos := make([]reaperPidinfo, min(int(st.descendants), maxLeftovers))
	rp := reaperPids{count: uint32(len(infos)), pids: &infos[0]}
	err := procctl(procReapGetpids, unsafe.Pointer(&rp))
	runtime.KeepAlive(infos)
	if err != nil {
		return nil
	}
	var kids []int
	for _, in := range infos {
		if in.flags&reaperPidinfoValid != 0 && in.flags&reaperPidinfoChild != 0 && int(in.subtree) == pid && int(in.pid) != pid {
			kids = append(kids, int(in.pid))
		}
	}
	return kids
}

// procctl calls procctl(P_PID, this process, cmd, data).
func procctl(cmd int, data unsafe.Pointer) error {
	const pPID = 0 // P_PID in <sys/wait.h>
	_, _, e := unix.Syscall6(unix.SYS_PROCCTL, pPID, uintptr(unix.Getpid()), uintptr(cmd), uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
