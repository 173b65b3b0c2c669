//go:build unix

package testio

import (
	"os"

	"golang.org/x/sys/unix"
)

// WithStdout runs f with fd 1 pointing to w, and points it back even if f
// panics. It changes the process's fd 1, so it must not run beside other
// code that writes to stdout.
func WithStdout(w *os.File, f func()) error {
	saved, err := unix.Dup(1)
	if err != nil {
		return err
	}
	defer unix.Close(saved)
	if err := unix.Dup2(int(w.Fd()), 1); err != nil {
		return err
	}
	defer unix.Dup2(saved, 1)
	f()
	return nil
}
