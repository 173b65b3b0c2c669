package dispatcher

import (
	"bytes"
	"syscall"

	"github.com/procrastinate-go/procrastinate/procman"
)

// limitHit names the limit of j's call that its child ran into, where the
// kernel or the Go runtime tells: for CPU time SIGXCPU, which procman.Child
// reports on stderr before it kills the child, or SIGKILL at the hard
// limit; for address space a failed mapping reported on stderr (see
// outOfAddressSpace).
func limitHit(j *job, e *procman.Exit) string {
	l := j.call.Process
	if l == nil {
		return ""
	}
	switch {
	case l.CPUTime > 0 && (e.Signal == sigXCPU || bytes.Contains(e.Stderr, []byte("(SIGXCPU)")) ||
		(e.Signal == syscall.SIGKILL && e.UserTime+e.SystemTime >= l.CPUTime)):
		return "CPU time (RLIMIT_CPU)"
	case l.AddressSpace > 0 && e.Signal == 0 && outOfAddressSpace(e.Stderr):
		return "address space (RLIMIT_AS)"
	}
	return ""
}

// outOfAddressSpace reports whether stderr holds one of the ways a Go
// child dies when a mapping fails under RLIMIT_AS. The runtime says "out
// of memory" only when it cannot get a heap span; for its own metadata it
// says "cannot allocate memory", and at start "failed to reserve page
// summary memory". A cgo binary may fail first to map a new thread's
// stack ("pthread_create failed", then SIGABRT, which the runtime turns
// into exit status 2), and under -race the race detector fails to map its
// shadow memory ("ThreadSanitizer failed to allocate", exit status 66).
func outOfAddressSpace(stderr []byte) bool {
	for _, s := range []string{
		"out of memory",
		"cannot allocate memory",
		"failed to reserve page summary memory",
		"pthread_create failed",
		"ThreadSanitizer failed to allocate",
		"too many address space collisions", // a -race heap that cannot map where it must
	} {
		if bytes.Contains(stderr, []byte(s)) {
			return true
		}
	}
	return false
}
