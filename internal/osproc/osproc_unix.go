//go:build unix

package osproc

import "syscall"

// MaxRSS returns this process's peak resident set in bytes as getrusage
// gives it, or 0 when it cannot tell.
func MaxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return maxRSSBytes(int64(ru.Maxrss))
}
