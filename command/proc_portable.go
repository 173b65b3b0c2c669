//go:build unix && (!linux || procrastinate_portable)

package command

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/pgroup"
)

// proc is a command's process, named by its pid. Only runOnce reaps it,
// by that pid, and signals its group only until then (see runOnce): a
// pid once reaped may name a stranger.
type proc struct {
	pid      int
	recorded bool // its group is in pgroup's record
}

// startProc forks and execs path. A subreaper of its own, where the system
// has one, the process first becomes (see acquireReaper).
func startProc(path string, argv []string, attr *syscall.ProcAttr) (*proc, error) {
	acquireReaper()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return nil, err
	}
	// Recorded until it is reaped: a child that ends of its own accord
	// (its parent died) kills the group with it.
	pgroup.Add(pid)
	return &proc{pid: pid, recorded: true}, nil
}

// awaitExit waits for p to exit without reaping it, where the system can
// (see exitedWait); peeked is false where it cannot, and then it has not
// waited.
func (p *proc) awaitExit() (peeked bool, err error) {
	for {
		peeked, err = exitedWait(p.pid)
		if err != unix.EINTR {
			break
		}
	}
	if peeked {
		p.forget() // before the reaping; see pgroup.Remove
	}
	return peeked, err
}

// finish ends what p, which has exited and whose group was killed, left
// outside its group while its zombie keeps its pid from a stranger, then
// reaps it; it reports how many processes it ended.
func (p *proc) finish(ws *unix.WaitStatus, ru *unix.Rusage, mark string) (int, error) {
	n := endSubtree(p.pid)
	return n, p.reap(ws, ru)
}

// release forgets p's group where awaitExit could not (macOS): there the
// reaping came first, and a child ending in that instant might signal a
// group id just freed.
func (p *proc) release() { p.forget() }

// forget takes p's group out of pgroup's record, once.
func (p *proc) forget() {
	if p.recorded {
		pgroup.Remove(p.pid)
		p.recorded = false
	}
}
