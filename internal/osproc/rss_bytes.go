//go:build unix && !darwin && !ios

package osproc

// RSSBytes converts ru_maxrss (getrusage, wait4), in KiB on this system, to bytes.
func RSSBytes(v int64) int64 { return v * 1024 }
