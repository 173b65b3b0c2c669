// Package lockdir holds the directories of lock files that a dispatcher
// shares with its children, and the flock(2) locks taken in them: the
// mechanism behind dispatcher.Dispatcher.Lock and task.Lock. Package lock
// holds what callers see: lock.Lock, lock.ErrHeld and lock.NameError,
// which its init sets here ([ErrHeld], [NewNameError], [Bind]).
//
// What the package guarantees, and how it waits, is said in lock's
// package documentation.
package lockdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What callers see of a lock and its errors is package lock's: its init
// sets these.
var (
	// ErrHeld is what TryLock returns when another holder, in this
	// process or another, has the lock: lock.ErrHeld.
	ErrHeld error
	// NewNameError returns the error for a lock name that is not a plain
	// file name: a *lock.NameError.
	NewNameError func(name, reason string) error
	// Bind makes l, a new *lock.Lock, the caller's handle on h.
	Bind func(l any, h *Held)
)

// Public returns h as a new *L (a *lock.Lock), or nil and err when err is
// not nil: what a lock's caller gets from a Lock or TryLock of a Dir.
func Public[L any](h *Held, err error) (*L, error) {
	if err != nil {
		return nil, err
	}
	l := new(L)
	Bind(l, h)
	return l, nil
}

// errNoDir is returned by the methods of a Dir that was not made by New
// or At.
var errNoDir = errors.New("lock: Dir has no directory (make it with New or At)")

// dirPrefix begins the name of every directory that New names.
const dirPrefix = "procrastinate-locks-"

// maxNameLen is the longest name a lock may have: NAME_MAX on Linux and
// the BSDs.
const maxNameLen = 255

// The pauses of a waiting Lock: the first, and the longest.
const (
	minPause = 200 * time.Microsecond
	maxPause = 10 * time.Millisecond
)

// Dir is a directory of lock files, one file for each lock name. A Dir
// holds the directory's path and no file descriptor, so a Dir that is
// dropped needs no closing. It is safe for concurrent use. The zero Dir
// has no directory; its methods return an error.
type Dir struct {
	path string

	mu      sync.Mutex
	made    atomic.Bool // the directory exists, or did: it is not made again
	removed bool        // Remove was called: the directory is never made again

	// onWait, if not nil, is called when a Lock call finds the lock held
	// and starts to wait for it (once per call). Tests use it.
	onWait func(name string)
}

// New returns a Dir for a new private lock directory under parent
// (os.TempDir() if parent is ""), and makes nothing: the directory is
// made when a lock is first taken in it, by this Dir or by the Dir that
// [At] returns for its path in another process, whichever comes first. A
// program that takes no lock leaves nothing behind.
//
// The directory's name is procrastinate-locks- followed, on Linux, by
// what tells this process apart from any other that ever ran (its PID
// namespace, its pid and its start time), so that [RemoveStale] can
// remove it once this process has ended without [Dir.Remove], and then
// by a random string. Its path, [Dir.Path], is absolute, ready to be
// handed to other processes.
func New(parent string) (*Dir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	abs, err := filepath.Abs(parent)
	if err != nil {
		return nil, fmt.Errorf("lock: new directory: %w", err)
	}
	// The random part only keeps two dispatchers of one process apart:
	// the directory is made with O_EXCL-like mkdir and checked before use,
	// so nothing depends on its being hard to guess. math/rand/v2 is
	// seeded by the runtime; crypto/rand would cost every child of the
	// program the initialisation of the whole crypto stack.
	return &Dir{path: filepath.Join(abs, fmt.Sprintf("%s%s%016x", dirPrefix, ownerTag(), rand.Uint64()))}, nil
}

// At returns a Dir for the lock directory at path, which need not exist
// yet: a child uses the one that its parent named with [New]. The first
// lock taken makes the directory with mode 0700 if it is not there; if it
// is there, it must be a private directory of this user (not a symbolic
// link, and not writable by group or others), or the lock fails. A relative path is made absolute.
func At(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("lock: directory: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lock: directory: %w", err)
	}
	return &Dir{path: abs}, nil
}

// Path returns the directory's absolute path ("" for the zero Dir).
func (d *Dir) Path() string {
	return d.path
}

// Remove deletes the directory and its lock files, if the directory is
// there; the process that named or made it calls it when all work is done
// (the dispatcher, at shutdown). A directory that is not there is not an
// error, and neither is one that another process made at the path of a
// Dir from [New] (a child's first lock). A path that holds something else
// than a directory of this user is left alone, with an error.
//
// Locks held when the directory is removed keep working: a holder keeps
// its lock, and keeps excluding the others who had opened the same file,
// until it releases it (flock works on a file that has been unlinked), and
// its Unlock succeeds. Lock and TryLock calls made after Remove fail with
// an error that wraps fs.ErrNotExist; a Dir from New or At does not make
// the directory again.
func (d *Dir) Remove() error {
	if d.path == "" {
		return errNoDir
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed = true
	fi, err := os.Lstat(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = checkOwner(fi)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("not a directory (mode %v)", fi.Mode())
		}
	}
	if err == nil {
		err = os.RemoveAll(d.path)
	}
	if err != nil {
		return fmt.Errorf("lock: remove directory %s: %w", d.path, err)
	}
	return nil
}

// ensure makes the directory of a Dir from New or At if it is not there
// yet, and checks one that is.
func (d *Dir) ensure() error {
	if d.made.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.made.Load() {
		return nil
	}
	if d.removed {
		return fmt.Errorf("lock: directory %s was removed: %w", d.path, fs.ErrNotExist)
	}
	if err := makeDir(d.path); err != nil {
		return fmt.Errorf("lock: make directory %s: %w", d.path, err)
	}
	d.made.Store(true)
	return nil
}

// RemoveStale removes the lock directories under parent (os.TempDir() if
// parent is "") that [New] named for a process that no longer
// runs: a program killed, or one that exited without [Dir.Remove], leaves
// its directory behind. It removes only directories that this user owns,
// and never follows a symbolic link. It leaves alone a directory whose
// process still runs, one named for a process in another PID namespace
// (it cannot tell whether that one runs), and one named in another way.
// It returns the paths it removed, and the first error met on the way
// (it goes on past it). Where processes cannot be told apart (off Linux),
// it removes nothing.
func RemoveStale(parent string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	f, err := os.Open(parent)
	if err != nil {
		return nil, fmt.Errorf("lock: remove stale directories: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("lock: remove stale directories: %w", err)
	}
	var removed []string
	var first error
	for _, name := range names {
		tag, ok := strings.CutPrefix(name, dirPrefix)
		if !ok || !ownerGone(tag) {
			continue
		}
		path := filepath.Join(parent, name)
		fi, err := os.Lstat(path)
		if err != nil || !fi.IsDir() || checkOwner(fi) != nil {
			continue // gone meanwhile, a symbolic link, another user's
		}
		if err := os.RemoveAll(path); err != nil {
			if first == nil {
				first = fmt.Errorf("lock: remove stale directory: %w", err)
			}
			continue
		}
		removed = append(removed, path)
	}
	return removed, first
}

// Lock takes the named lock, waiting until it is free or ctx ends. It
// returns an error that wraps ctx.Err() if ctx ends first (and fails
// without taking the lock if ctx has already ended when it is called),
// a *lock.NameError if name is not a plain file name, and an error wrapping
// the system's error if the lock file cannot be opened or locked.
//
// Lock waits by polling, with a pause that starts near 200µs and doubles
// up to 10ms, rather than in a blocking flock: a blocking flock cannot be
// interrupted from Go, so a Lock that gave up when ctx ended would leave a
// goroutine and an OS thread blocked until the lock came free. Waiters are
// not served in any order.
func (d *Dir) Lock(ctx context.Context, name string) (*Held, error) {
	if err := ctx.Err(); err != nil {
		return nil, waitError(ctx, name)
	}
	fd, err := d.open(name)
	if err != nil {
		return nil, err
	}
	var timer *time.Timer
	pause := minPause
	for {
		ok, err := tryFlock(fd)
		if err != nil {
			closeFile(fd)
			return nil, fmt.Errorf("lock: %q: flock: %w", name, err)
		}
		if ok {
			return newHeld(name, fd), nil
		}
		if timer == nil {
			timer = time.NewTimer(pause)
			defer timer.Stop()
			if d.onWait != nil {
				d.onWait(name)
			}
		} else {
			timer.Reset(pause)
		}
		select {
		case <-ctx.Done():
			closeFile(fd)
			return nil, waitError(ctx, name)
		case <-timer.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// waitError is the error of a Lock whose ctx ended: it wraps ctx.Err(),
// and the cause too if the context was cancelled with one.
func waitError(ctx context.Context, name string) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("lock: waiting for %q: %w (%w)", name, err, cause)
	}
	return fmt.Errorf("lock: waiting for %q: %w", name, err)
}

// TryLock takes the named lock if it is free now, and never waits. If
// another holder has it, in this process or another, TryLock returns
// [ErrHeld]. Its other errors are those of [Dir.Lock].
func (d *Dir) TryLock(name string) (*Held, error) {
	fd, err := d.open(name)
	if err != nil {
		return nil, err
	}
	ok, err := tryFlock(fd)
	if err != nil {
		closeFile(fd)
		return nil, fmt.Errorf("lock: %q: flock: %w", name, err)
	}
	if !ok {
		closeFile(fd)
		return nil, ErrHeld
	}
	return newHeld(name, fd), nil
}

// Do runs f while holding the named lock: it takes the lock as [Dir.Lock]
// does, runs f, and releases the lock when f returns or panics (the panic
// goes on). It returns the error of taking the lock, or else f's error, or
// else the error of releasing it. This is the gem's synchronize.
func (d *Dir) Do(ctx context.Context, name string, f func() error) (err error) {
	l, err := d.Lock(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		if uerr := l.Unlock(); err == nil {
			err = uerr
		}
	}()
	return f()
}

// open validates name and opens (creating if need be) its lock file.
func (d *Dir) open(name string) (int, error) {
	if d.path == "" {
		return -1, errNoDir
	}
	if err := checkName(name); err != nil {
		return -1, err
	}
	if err := d.ensure(); err != nil {
		return -1, err
	}
	path := filepath.Join(d.path, name)
	fd, err := openFile(path)
	if err != nil {
		perr := &fs.PathError{Op: "open", Path: path, Err: err}
		if isLoop(err) {
			return -1, fmt.Errorf("lock: %q: %w (a symbolic link stands where the lock file should be; it is not followed)", name, perr)
		}
		return -1, fmt.Errorf("lock: %q: %w", name, perr)
	}
	return fd, nil
}

// Held is a held lock, from [Dir.Lock] or [Dir.TryLock]: what a
// lock.Lock holds. It holds an open file descriptor until Unlock releases
// it; one that is dropped without Unlock stays held until the process
// ends (it is not released by the garbage collector). Its methods are
// safe for concurrent use, and on a nil Held.
type Held struct {
	name string
	fd   atomic.Int64 // the file descriptor plus one; 0 once released
}

func newHeld(name string, fd int) *Held {
	h := &Held{name: name}
	h.fd.Store(int64(fd) + 1)
	return h
}

// Name returns the lock's name ("" for a nil Held).
func (h *Held) Name() string {
	if h == nil {
		return ""
	}
	return h.name
}

// Unlock releases the lock and closes its file. Calling it again, from any
// goroutine, or on a nil Held does nothing and returns nil; when calls
// race, exactly one of them releases the lock. Once Unlock has returned
// the lock is free for others to take.
func (h *Held) Unlock() error {
	if h == nil {
		return nil
	}
	fd := h.fd.Swap(0) - 1
	if fd < 0 {
		return nil
	}
	if err := release(int(fd)); err != nil {
		return fmt.Errorf("lock: unlock %q: %w", h.name, err)
	}
	return nil
}

// checkName returns a *lock.NameError if name cannot be a lock file's
// name.
func checkName(name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "empty"
	case name == ".":
		reason = `is "."`
	case name == "..":
		reason = `is ".."`
	case len(name) > maxNameLen:
		reason = fmt.Sprintf("%d bytes long; at most %d allowed", len(name), maxNameLen)
	case strings.IndexByte(name, '/') >= 0:
		reason = "contains '/'"
	case strings.IndexByte(name, 0) >= 0:
		reason = "contains a NUL byte"
	default:
		return nil
	}
	return NewNameError(name, reason)
}
