//go:build !unix

package osproc

// MaxRSS returns 0: this system has no getrusage.
func MaxRSS() int64 { return 0 }
