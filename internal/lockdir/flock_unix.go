//go:build unix && !aix

package lockdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openFile opens the lock file at path, creating it if need be, without
// following a symbolic link, and close-on-exec so that children started
// while a lock is held do not inherit it. It returns a raw descriptor, not
// an *os.File, whose finalizer would release a dropped Lock at some
// garbage collection. A file that is not a regular file (a directory, a
// FIFO, planted under the lock's name) is refused.
func openFile(path string) (int, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, errors.New("not a regular file")
	}
	return fd, nil
}

// tryFlock takes an exclusive flock on fd without waiting. It reports
// false if another open file description holds one.
func tryFlock(fd int) (bool, error) {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EWOULDBLOCK:
			return false, nil
		case unix.EINTR:
			continue
		}
		return false, err
	}
}

// release drops the flock on fd and closes it. Closing alone would release
// it only when the last descriptor for the open file description closes;
// a copy made by a fork that has not yet reached its exec would keep the
// lock held a little longer. LOCK_UN releases it at once.
func release(fd int) error {
	uerr := unix.Flock(fd, unix.LOCK_UN)
	cerr := unix.Close(fd)
	if uerr != nil {
		return fmt.Errorf("flock: %w", uerr)
	}
	if cerr != nil {
		return fmt.Errorf("close: %w", cerr)
	}
	return nil
}

// closeFile closes a descriptor that holds no lock.
func closeFile(fd int) {
	unix.Close(fd)
}

// isLoop reports whether err is what O_NOFOLLOW gives for a symbolic link.
func isLoop(err error) bool {
	return errors.Is(err, unix.ELOOP)
}

// makeDir makes the private directory path (mode 0700 whatever the
// umask), or checks the one that is there: it must be a directory, not a
// symbolic link, owned by this user and not writable by group or others.
// The checks are made on the directory opened without following a link,
// so nothing can be swapped in between.
func makeDir(path string) error {
	err := unix.Mkdir(path, 0o700)
	made := err == nil
	if err != nil && err != unix.EEXIST {
		return &fs.PathError{Op: "mkdir", Path: path, Err: err}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		// What it is, for the message (the open refused it either way).
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return errors.New("is a symbolic link; want the directory itself")
		}
		return errors.New("not a directory")
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not by this user (uid %d)", st.Uid, uid)
	}
	if made {
		// The umask may have taken bits away.
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return &fs.PathError{Op: "chmod", Path: path, Err: err}
		}
	} else if st.Mode&0o022 != 0 {
		return fmt.Errorf("writable by group or others (mode %v); want a private directory", fs.FileMode(st.Mode&0o777))
	}
	return nil
}

// checkOwner refuses a directory that another user owns.
func checkOwner(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not by this user (uid %d)", st.Uid, uid)
	}
	return nil
}
