//go:build unix && (!linux || procrastinate_portable)

package procman

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// encodeRlimits is the value of rlimitsKey for limits.
func encodeRlimits(limits []Rlimit) string {
	var b strings.Builder
	for i, l := range limits {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d:%d", l.Resource, l.Cur, l.Max)
	}
	return b.String()
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
