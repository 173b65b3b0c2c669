//go:build darwin || ios

package osproc

// maxRSSBytes converts ru_maxrss, in bytes on this system, to bytes.
func maxRSSBytes(v int64) int64 { return v }
