//go:build unix && !darwin && !ios

package osproc

// maxRSSBytes converts ru_maxrss, in KiB on this system, to bytes.
func maxRSSBytes(v int64) int64 { return v * 1024 }
