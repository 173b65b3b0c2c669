//go:build !linux

package command

import (
	"context"
	"errors"
)

// errUnsupported is the error of every command on a system other than
// Linux: starting a command in its child, and finding what it left
// behind, need Linux's process interfaces.
var errUnsupported = errors.New("command: commands run on Linux only; this system is not supported yet")

// run fails: see errUnsupported.
func run(ctx context.Context, c Cmd) (Result, error) { return Result{}, errUnsupported }
