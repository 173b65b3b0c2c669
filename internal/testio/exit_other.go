//go:build !linux

package testio

import (
	"errors"
	"time"
)

// WaitExited fails off Linux, which has no pidfd to wait on.
func WaitExited(pid int, start uint64, within time.Duration) (bool, error) {
	return false, errors.New("testio: WaitExited needs Linux's pidfds")
}
