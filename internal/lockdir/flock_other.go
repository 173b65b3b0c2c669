//go:build !unix || aix

package lockdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// errUnsupported is the error of taking a lock where there is no flock.
var errUnsupported = errors.ErrUnsupported

func openFile(path string) (int, error) { return -1, errUnsupported }

func tryFlock(fd int) (bool, error) { return false, errUnsupported }

func release(fd int) error { return errUnsupported }

func closeFile(fd int) {}

func isLoop(err error) bool { return false }

func checkOwner(fi fs.FileInfo) error { return nil }

// makeDir makes the directory path (mode 0700), or checks the one that is
// there: a directory, not a symbolic link.
func makeDir(path string) error {
	err := os.Mkdir(path, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("not a directory (mode %v)", fi.Mode())
	}
	return nil
}
