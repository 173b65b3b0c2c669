//go:build !unix || aix

package lock

import (
	"errors"
	"io/fs"
)

// errUnsupported is the error of taking a lock where there is no flock.
var errUnsupported = errors.ErrUnsupported

func openFile(path string) (int, error) { return -1, errUnsupported }

func tryFlock(fd int) (bool, error) { return false, errUnsupported }

func release(fd int) error { return errUnsupported }

func closeFile(fd int) {}

func isLoop(err error) bool { return false }

func checkOwner(fi fs.FileInfo) error { return nil }
