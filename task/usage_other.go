//go:build !unix

package task

import "time"

// cpuTimes returns zeros: this system has no getrusage.
func cpuTimes() (user, system time.Duration, childPeak int64) { return 0, 0, 0 }
