//go:build unix

package task

import (
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/osproc"
)

// cpuTimes returns the CPU time of this process and of the children it
// waited for, and the children's peak resident set in bytes.
func cpuTimes() (user, system time.Duration, childPeak int64) {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	user = time.Duration(self.Utime.Nano() + kids.Utime.Nano())
	system = time.Duration(self.Stime.Nano() + kids.Stime.Nano())
	return user, system, osproc.RSSBytes(int64(kids.Maxrss))
}
