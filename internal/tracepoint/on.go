//go:build procrastinate_trace && linux

package tracepoint

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Enabled reports whether this build records marks (the procrastinate_trace
// tag).
const Enabled = true

type record struct {
	ns    int64
	p     Point
	cpu   uint32
	ready atomic.Bool // written last, read first: Dump skips a mark still being written
}

var (
	dir     = os.Getenv("PROCRASTINATE_TRACE")
	records [1 << 16]record
	n       atomic.Int64
)

// Mark records that the task passed p: the time, and the CPU it runs on.
// Marks past the first 65,536 of a process are dropped.
func Mark(p Point) {
	if dir == "" {
		return
	}
	var ts unix.Timespec
	// Raw system calls: x/sys's ClockGettime goes through the runtime's
	// system-call entry, which wakes sysmon in a process that was idle
	// (see procman's rawRead), a thread wake-up the untraced build
	// does not have.
	_, _, _ = unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ts)), 0)
	var cpu uint32
	_, _, _ = unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0)
	if i := n.Add(1) - 1; i < int64(len(records)) {
		r := &records[i]
		r.ns, r.p, r.cpu = ts.Nano(), p, cpu
		r.ready.Store(true)
	}
}

// Dump writes this process's marks to $PROCRASTINATE_TRACE/<pid>.trace,
// one per line: nanoseconds, point, CPU.
func Dump() {
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.trace", os.Getpid())))
	if err != nil {
		fmt.Fprintf(os.Stderr, "tracepoint: %v\n", err)
		return
	}
	w := bufio.NewWriter(f)
	for i := range min(n.Load(), int64(len(records))) {
		r := &records[i]
		if r.ready.Load() {
			fmt.Fprintf(w, "%d %s %d\n", r.ns, r.p, r.cpu)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(os.Stderr, "tracepoint: %v\n", err)
	}
	f.Close()
}
