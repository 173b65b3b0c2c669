//go:build unix && !linux && !openbsd

package command

import "golang.org/x/sys/unix"

// setAddressSpace sets RLIMIT_AS to n bytes.
func setAddressSpace(n uint64) error {
	return setRlimit(unix.RLIMIT_AS, n, n)
}
