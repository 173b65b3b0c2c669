// Package meter measures a run of tasks from outside: its wall time, and
// the CPU time of the process and of the children it has reaped.
package meter

import (
	"fmt"
	"syscall"
	"time"
)

// A Meter is a run's starting point. Its zero value is not started.
type Meter struct {
	t0             time.Time
	self, children time.Duration
}

// Use is what a run used.
type Use struct {
	Wall     time.Duration // elapsed time
	Self     time.Duration // CPU time of this process, user and system
	Children time.Duration // CPU time of the children reaped during the run
}

// Start starts a Meter now.
func Start() Meter {
	return Meter{time.Now(), cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN)}
}

// Stop returns what was used since m started. Children count only once
// they have been reaped: stop a run after its last child is gone.
func (m Meter) Stop() Use {
	return Use{time.Since(m.t0), cpu(syscall.RUSAGE_SELF) - m.self, cpu(syscall.RUSAGE_CHILDREN) - m.children}
}

// Line formats u as a result line of go test -bench for n tasks: the
// wall time per task (ns/op), tasks/s, and the CPU per task of the
// process (parent-cpu-µs/task) and of its children (child-cpu-µs/task).
func (u Use) Line(name string, n int) string {
	return fmt.Sprintf("Benchmark%s\t%d\t%d ns/op\t%.0f tasks/s\t%.1f parent-cpu-µs/task\t%.1f child-cpu-µs/task\n",
		name, n, u.Wall.Nanoseconds()/int64(n), float64(n)/u.Wall.Seconds(), PerTask(u.Self, n), PerTask(u.Children, n))
}

// PerTask returns d over n tasks, in microseconds.
func PerTask(d time.Duration, n int) float64 {
	return float64(d.Nanoseconds()) / 1e3 / float64(n)
}

// cpu returns the user and system time of who (RUSAGE_SELF or
// RUSAGE_CHILDREN).
func cpu(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		panic(fmt.Sprintf("meter: getrusage(%d): %v", who, err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
