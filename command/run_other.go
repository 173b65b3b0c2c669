//go:build !unix

package command

import (
	"context"
	"errors"
)

// errUnsupported is the error of every command on a system that is not a
// Unix: a command runs in a process group of its own, which such a
// system does not have.
var errUnsupported = errors.New("command: commands run on Unix systems only (Linux, macOS, the BSDs)")

// run fails: see errUnsupported.
func run(ctx context.Context, c Cmd) (Result, error) { return Result{}, errUnsupported }
