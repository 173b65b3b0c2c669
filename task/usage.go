package task

import (
	"os"
	"sync"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
)

// meter measures, in the child, what one call costs: the CPU time of the
// child and of the processes it waited for (RUSAGE_SELF and
// RUSAGE_CHILDREN), and the peak resident set. For a call that is its
// child's only one (a child started for it), the whole life of the child
// counts, its Go runtime's start too; for a call in a reused child, what
// changed over the call, with the peak reset as the call starts (writing
// 5 to /proc/self/clear_refs resets VmHWM to the current resident set).
type meter struct {
	user, system time.Duration
	childPeak    int64 // RUSAGE_CHILDREN's peak at the start
}

// startMeter starts measuring a call; whole says that it is the child's
// only call.
func startMeter(whole bool) meter {
	if whole {
		return meter{}
	}
	procFiles.reset()
	user, system, childPeak := cpuTimes()
	return meter{user: user, system: system, childPeak: childPeak}
}

// end returns what the call cost since start.
func (m meter) end() wire.Usage {
	user, system, childPeak := cpuTimes()
	u := wire.Usage{User: user - m.user, System: system - m.system}
	u.MaxRSS = procFiles.peak()
	if childPeak > m.childPeak && childPeak > u.MaxRSS {
		u.MaxRSS = childPeak // a process the task waited for peaked higher
	}
	return u
}

// procFiles keeps /proc/self/status and /proc/self/clear_refs open, so
// that a reused child measures each call with a read and a write and no
// open.
var procFiles procFileSet

type procFileSet struct {
	once   sync.Once
	status *os.File // nil where /proc is not mounted
	clear  *os.File // nil where it cannot be written
	buf    []byte
}

func (p *procFileSet) open() {
	p.once.Do(func() {
		p.status, _ = os.Open("/proc/self/status")
		p.clear, _ = os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
		p.buf = make([]byte, 8<<10)
	})
}

// reset sets the peak resident set (VmHWM) to the current one.
func (p *procFileSet) reset() {
	p.open()
	if p.clear != nil {
		_, _ = p.clear.Write([]byte("5"))
	}
}

// peak returns the peak resident set since exec or the last reset.
func (p *procFileSet) peak() int64 {
	p.open()
	if p.status != nil {
		if n, err := p.status.ReadAt(p.buf, 0); n > 0 && (err == nil || n < len(p.buf)) {
			if kB, ok := statusKB(p.buf[:n], "VmHWM:"); ok {
				return kB * 1024
			}
		}
	}
	return peakRSS()
}
