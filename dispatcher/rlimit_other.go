//go:build !unix

package dispatcher

import (
	"syscall"

	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/task"
)

// sigXCPU stands for the signal of a CPU time limit, which this system
// does not send.
const sigXCPU = syscall.Signal(24)

// rlimits: this system has no resource limits to set (and no backend to
// start children: the dispatcher's Setup fails first).
func rlimits(l *task.Process) []procman.Rlimit { return nil }
