package main

import (
	"bytes"
	"os"
	"strconv"
)

// roomFor reports whether --load and --memfree let another job start: the
// one-minute load average is below --load, and the memory available (the
// kernel's MemAvailable) is at least --memfree. What cannot be read does
// not hold jobs back.
func roomFor(o *options) bool {
	if o.load > 0 {
		if l, ok := loadAverage(); ok && l >= o.load {
			return false
		}
	}
	if o.memfree > 0 {
		if m, ok := memAvailable(); ok && m < o.memfree {
			return false
		}
	}
	return true
}

// loadAverage is the one-minute load average, from /proc/loadavg.
func loadAverage() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return 0, false
	}
	l, err := strconv.ParseFloat(string(f[0]), 64)
	return l, err == nil
}

// memAvailable is MemAvailable in bytes, from /proc/meminfo.
func memAvailable() (uint64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("MemAvailable:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			kb, err := strconv.ParseUint(string(f[0]), 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}
