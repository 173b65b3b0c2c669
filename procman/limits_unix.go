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

// setLimit sets a field of unix.Rlimit, which is a uint64 on most
// systems and an int64 on FreeBSD.
func setLimit[T int64 | uint64](field *T, v uint64) { *field = T(v) }
