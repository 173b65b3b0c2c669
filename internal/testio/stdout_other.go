//go:build !unix

package testio

import (
	"errors"
	"os"
)

// WithStdout fails where fds cannot be moved with dup2.
func WithStdout(w *os.File, f func()) error {
	return errors.New("testio: WithStdout needs a Unix system")
}
