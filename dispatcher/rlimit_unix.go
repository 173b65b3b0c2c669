//go:build unix

package dispatcher

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/task"
)

// sigXCPU is the signal of a CPU time limit.
const sigXCPU = syscall.SIGXCPU

// rlimits turns a call's limits into the process manager's.
func rlimits(l *task.Process) []procman.Rlimit {
	var out []procman.Rlimit
	if l.AddressSpace > 0 {
		out = append(out, procman.Rlimit{Resource: unix.RLIMIT_AS, Cur: l.AddressSpace, Max: l.AddressSpace})
	}
	if l.CPUTime > 0 {
		secs := uint64((l.CPUTime + time.Second - 1) / time.Second)
		// SIGXCPU at the soft limit; the hard limit, a second later, is
		// SIGKILL in case the child catches SIGXCPU.
		out = append(out, procman.Rlimit{Resource: unix.RLIMIT_CPU, Cur: secs, Max: secs + 1})
	}
	return out
}
