//go:build unix

package procman

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// setOwnLimits sets the resource limits that the parent passed in the
// environment (see rlimitsKey) on this process, and removes the mark.
func setOwnLimits() error {
	v, ok := os.LookupEnv(rlimitsKey)
	if !ok {
		return nil
	}
	os.Unsetenv(rlimitsKey)
	limits, err := decodeRlimits(v)
	if err != nil {
		return err
	}
	for _, l := range limits {
		var r unix.Rlimit
		setLimit(&r.Cur, l.Cur)
		setLimit(&r.Max, l.Max)
		if err := unix.Setrlimit(l.Resource, &r); err != nil {
			return fmt.Errorf("setting resource limit %d to %d/%d: %w", l.Resource, l.Cur, l.Max, err)
		}
	}
	return nil
}

// checkLimits refuses, before a child is started, the limits that the
// child could not set on itself: a resource this system does not know, a
// soft limit above the hard one (EINVAL), and, without root, a hard limit
// above this process's own (EPERM), which the child inherits.
func checkLimits(limits []Rlimit) error {
	for _, l := range limits {
		var own unix.Rlimit
		err := unix.Getrlimit(l.Resource, &own)
		switch {
		case err != nil:
		case l.Cur > l.Max:
			err = unix.EINVAL
		case l.Max > uint64(own.Max) && os.Geteuid() != 0:
			err = unix.EPERM
		}
		if err != nil {
			return fmt.Errorf("setting resource limit %d to %d/%d: %w", l.Resource, l.Cur, l.Max, err)
		}
	}
	return nil
}

// setLimit sets a field of unix.Rlimit, which is a uint64 on most
// systems and an int64 on FreeBSD.
func setLimit[T int64 | uint64](field *T, v uint64) { *field = T(v) }
