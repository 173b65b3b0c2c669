//go:build unix && !aix

package lockdir

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// The environment of a helper process: the test binary re-executed, with
// helperEnv naming what it is to do (see helpers).
const (
	helperEnv = "LOCK_TEST_HELPER"
	dirEnv    = "LOCK_TEST_DIR"
	nameEnv   = "LOCK_TEST_NAME"
	outEnv    = "LOCK_TEST_OUT"
	roundsEnv = "LOCK_TEST_ROUNDS"
)

// The tests run without package lock, whose init sets what callers see of
// a lock's errors; these stand in for them.
func init() {
	ErrHeld = errors.New("lock: held by another holder")
	NewNameError = func(name, reason string) error { return &NameError{Name: name, Reason: reason} }
}

// NameError stands in for lock.NameError.
type NameError struct{ Name, Reason string }

func (e *NameError) Error() string {
	return fmt.Sprintf("lock: bad lock name %q: %s", e.Name, e.Reason)
}

// create names a directory with New and makes it now, as a first lock
// would.
func create(parent string) (*Dir, error) {
	d, err := New(parent)
	if err != nil {
		return nil, err
	}
	if err := d.ensure(); err != nil {
		return nil, err
	}
	return d, nil
}

func TestMain(m *testing.M) {
	// A race-built process sleeps a second at exit unless told otherwise;
	// the helper processes inherit this.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

// helpers are what a helper process can be asked to do, with the lock
// directory and the lock name from its environment. Each prints its
// findings on stdout; an error goes to stderr with exit status 2.
var helpers = map[string]func(d *Dir, name string) error{
	// try: TryLock and print "held" or "got" (and release).
	"try": func(d *Dir, name string) error {
		l, err := d.TryLock(name)
		if errors.Is(err, ErrHeld) {
			fmt.Println("held")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Println("got")
		return l.Unlock()
	},
	// hold: Lock, print "locked", and hold it until stdin ends or the
	// process is killed.
	"hold": func(d *Dir, name string) error {
		l, err := d.Lock(context.Background(), name)
		if err != nil {
			return err
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		return l.Unlock()
	},
	// new: name a directory with New under the helper's directory, take
	// the lock there (which makes it), print its path, and wait until
	// stdin ends or the process is killed.
	"new": func(d *Dir, name string) error {
		n, err := New(d.Path())
		if err != nil {
			return err
		}
		l, err := n.TryLock(name)
		if err != nil {
			return err
		}
		fmt.Println(n.Path())
		io.Copy(io.Discard, os.Stdin)
		return l.Unlock()
	},
	// fight: rounds times, take the lock and append 'l' and then 'u' to
	// the file named by outEnv, with a pause in between.
	"fight": func(d *Dir, name string) error {
		rounds, err := strconv.Atoi(os.Getenv(roundsEnv))
		if err != nil {
			return err
		}
		out, err := os.OpenFile(os.Getenv(outEnv), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer out.Close()
		for range rounds {
			err := d.Do(context.Background(), name, func() error {
				if _, err := out.WriteString("l"); err != nil {
					return err
				}
				time.Sleep(50 * time.Microsecond) // give a broken lock a chance to show
				_, err := out.WriteString("u")
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	},
}

func runHelper(mode string) int {
	f := helpers[mode]
	if f == nil {
		fmt.Fprintf(os.Stderr, "no helper %q\n", mode)
		return 2
	}
	// At, as a dispatcher's child does: the directory may not be made yet.
	d, err := At(os.Getenv(dirEnv))
	if err == nil {
		err = f(d, os.Getenv(nameEnv))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 2
	}
	return 0
}

// helperCmd returns the command for a helper process.
func helperCmd(t *testing.T, mode string, d *Dir, name string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, dirEnv+"="+d.Path(), nameEnv+"="+name)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// tryInChild asks another process to TryLock name in d, and returns what
// it found: "held" or "got".
func tryInChild(t *testing.T, d *Dir, name string) string {
	t.Helper()
	cmd := helperCmd(t, "try", d, name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helper try %q; stderr: %s", name, stderr.Bytes())
	return strings.TrimSpace(string(out))
}

// openFDs returns this process's open file descriptors and what they
// refer to.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open files: %v", err)
	}
	fds := make(map[string]string, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds[e.Name()] = target
	}
	return fds
}

// checkFDs makes t fail if the test leaves a file descriptor open.
func checkFDs(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return
	}
	openFDs(t) // the first listing may start the runtime's poller, with fds of its own
	before := openFDs(t)
	t.Cleanup(func() {
		after := openFDs(t)
		for fd, target := range after {
			// The listing's own descriptor differs from call to call.
			if before[fd] != target && !strings.HasSuffix(target, "/fd") {
				t.Errorf("fd %s (%s) left open by the test", fd, target)
			}
		}
	})
}

// newDir makes a lock directory that the test removes at its end.
func newDir(t *testing.T) *Dir {
	t.Helper()
	d, err := create(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { d.Remove() })
	return d
}

func TestBadNamesAreRefusedAndGoodNamesBecomeFiles(t *testing.T) {
	checkFDs(t)
	d := newDir(t)
	ctx := context.Background()

	bad := []struct {
		name, reason string
	}{
		{"", "empty"},
		{".", `is "."`},
		{"..", `is ".."`},
		{"a/b", "contains '/'"},
		{"/", "contains '/'"},
		{"a/", "contains '/'"},
		{"../x", "contains '/'"},
		{"a\x00b", "contains a NUL byte"},
		{strings.Repeat("x", 256), "256 bytes long; at most 255 allowed"},
		{strings.Repeat("é", 128), "256 bytes long; at most 255 allowed"},
	}
	for _, tt := range bad {
		t.Run(fmt.Sprintf("bad %.20q", tt.name), func(t *testing.T) {
			_, err := d.TryLock(tt.name)
			var ne *NameError
			require.ErrorAs(t, err, &ne, "TryLock(%q)", tt.name)
			require.Equal(t, tt.name, ne.Name)
			require.Equal(t, tt.reason, ne.Reason)
			require.Contains(t, err.Error(), "lock: bad lock name ")

			_, err = d.Lock(ctx, tt.name)
			require.ErrorAs(t, err, &ne, "Lock(%q)", tt.name)
			ran := false
			err = d.Do(ctx, tt.name, func() error { ran = true; return nil })
			require.ErrorAs(t, err, &ne, "Do(%q)", tt.name)
			require.False(t, ran, "Do(%q) ran f", tt.name)
		})
	}
	ents, err := os.ReadDir(d.Path())
	require.NoError(t, err)
	require.Empty(t, ents, "bad names made files")

	good := []string{
		"a", "a.b", ".hidden", "...", "a..b", "-dash", "under_score",
		"with space", "日本語", "emoji 🔒", "a\\b", strings.Repeat("x", 255),
	}
	for _, name := range good {
		t.Run(fmt.Sprintf("good %.20q", name), func(t *testing.T) {
			l, err := d.TryLock(name)
			require.NoError(t, err, "TryLock(%q)", name)
			require.Equal(t, name, l.Name())
			fi, err := os.Lstat(filepath.Join(d.Path(), name))
			require.NoError(t, err, "lock file for %q", name)
			require.True(t, fi.Mode().IsRegular(), "lock file mode %v", fi.Mode())
			require.Equal(t, fs.FileMode(0), fi.Mode().Perm()&0o077, "lock file mode %v; want no group or other bits", fi.Mode())
			require.NoError(t, l.Unlock())
		})
	}
}

func TestLockRefusesToFollowASymbolicLink(t *testing.T) {
	checkFDs(t)
	d := newDir(t)
	outside := t.TempDir()

	target := filepath.Join(outside, "target")
	require.NoError(t, os.WriteFile(target, []byte("keep"), 0o644))
	require.NoError(t, os.Symlink(target, filepath.Join(d.Path(), "link")))
	dangling := filepath.Join(outside, "nothing")
	require.NoError(t, os.Symlink(dangling, filepath.Join(d.Path(), "dangling")))

	for _, name := range []string{"link", "dangling"} {
		_, err := d.TryLock(name)
		require.ErrorIs(t, err, syscall.ELOOP, "TryLock(%q) through a symlink", name)
		require.Contains(t, err.Error(), "symbolic link")
		var pe *fs.PathError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, filepath.Join(d.Path(), name), pe.Path)

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err = d.Lock(ctx, name)
		cancel()
		require.ErrorIs(t, err, syscall.ELOOP, "Lock(%q) through a symlink", name)
	}

	b, err := os.ReadFile(target)
	require.NoError(t, err)
	require.Equal(t, "keep", string(b), "the symlink's target was changed")
	fi, err := os.Stat(target)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o644), fi.Mode().Perm(), "the symlink's target's mode was changed")
	_, err = os.Lstat(dangling)
	require.ErrorIs(t, err, fs.ErrNotExist, "a dangling symlink's target was created")

	// Nothing holds a flock on the target.
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB), "the symlink's target is locked")
}

func TestLockRefusesWhatIsNotARegularFile(t *testing.T) {
	checkFDs(t)
	d := newDir(t)
	require.NoError(t, os.Mkdir(filepath.Join(d.Path(), "dir"), 0o700))
	require.NoError(t, unix.Mkfifo(filepath.Join(d.Path(), "fifo"), 0o600))

	_, err := d.TryLock("dir")
	require.ErrorIs(t, err, syscall.EISDIR)
	_, err = d.TryLock("fifo")
	require.ErrorContains(t, err, "not a regular file")
}

// TestAHeldLockExcludesOtherProcessesUntilReleased ports the gem's lock_spec: while a lock is held, another
// process cannot take it; once it is released, it can.
func TestAHeldLockExcludesOtherProcessesUntilReleased(t *testing.T) {
	checkFDs(t)
	d := newDir(t)

	l, err := d.TryLock("x")
	require.NoError(t, err)
	require.Equal(t, "held", tryInChild(t, d, "x"), "another process while held")
	require.Equal(t, "got", tryInChild(t, d, "y"), "another process, another name")

	require.NoError(t, l.Unlock())
	require.Equal(t, "got", tryInChild(t, d, "x"), "another process after release")

	// And with Lock rather than TryLock.
	l, err = d.Lock(context.Background(), "x")
	require.NoError(t, err)
	require.Equal(t, "held", tryInChild(t, d, "x"), "another process while held")
	require.NoError(t, l.Unlock())
	require.Equal(t, "got", tryInChild(t, d, "x"), "another process after release")
}

// TestALockOfAKilledProcessIsReleased shows a lock held by another process excluding this one,
// and released by the kernel when that process is killed.
func TestALockOfAKilledProcessIsReleased(t *testing.T) {
	checkFDs(t)
	d := newDir(t)

	cmd := helperCmd(t, "hold", d, "x")
	cmd.Stderr = os.Stderr // its errors show in the test's output
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	defer stdin.Close()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "reading the helper (its stderr is above)")
	require.Equal(t, "locked\n", line)

	_, err = d.TryLock("x")
	require.ErrorIs(t, err, ErrHeld, "TryLock while another process holds it")

	waiting := make(chan struct{})
	d.onWait = func(string) { close(waiting) }
	type taken struct {
		l   *Held
		err error
	}
	got := make(chan taken, 1)
	go func() {
		l, err := d.Lock(context.Background(), "x")
		got <- taken{l, err}
	}()
	<-waiting
	select {
	case r := <-got:
		t.Fatalf("Lock = %v, %v while another process holds it; want it to wait", r.l, r.err)
	default:
	}

	require.NoError(t, cmd.Process.Kill())
	r := <-got
	require.NoError(t, r.err, "Lock after the holder was killed")
	require.NoError(t, r.l.Unlock())
	exited = true
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "helper's Wait")
}

// TestDoHoldsTheLockOnlyInsideF ports the gem's "synchronize holds it only inside".
func TestDoHoldsTheLockOnlyInsideF(t *testing.T) {
	checkFDs(t)
	d := newDir(t)
	ctx := context.Background()

	inside := ""
	err := d.Do(ctx, "x", func() error {
		inside = tryInChild(t, d, "x")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "held", inside, "another process inside Do")
	require.Equal(t, "got", tryInChild(t, d, "x"), "another process after Do")

	errF := errors.New("f failed")
	err = d.Do(ctx, "x", func() error { return errF })
	require.ErrorIs(t, err, errF, "Do returns f's error")
	require.Equal(t, "got", tryInChild(t, d, "x"), "another process after a failed Do")

	func() {
		defer func() {
			require.Equal(t, "boom", recover(), "the panic goes through Do")
		}()
		d.Do(ctx, "x", func() error { panic("boom") })
	}()
	l, err := d.TryLock("x")
	require.NoError(t, err, "TryLock after f panicked")
	require.NoError(t, l.Unlock())
}

func TestALockExcludesOtherHoldersInTheSameProcess(t *testing.T) {
	checkFDs(t)
	d := newDir(t)
	d2, err := At(d.Path())
	require.NoError(t, err)

	l, err := d.TryLock("x")
	require.NoError(t, err)

	_, err = d.TryLock("x")
	require.ErrorIs(t, err, ErrHeld, "second TryLock on the same Dir")
	require.EqualError(t, err, "lock: held by another holder")
	_, err = d2.TryLock("x")
	require.ErrorIs(t, err, ErrHeld, "second TryLock through another Dir on the same directory")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = d2.Lock(ctx, "x")
	require.ErrorIs(t, err, context.DeadlineExceeded, "Lock while this process holds it")

	other, err := d.TryLock("y")
	require.NoError(t, err, "another name is free")

	require.NoError(t, l.Unlock())
	l, err = d2.TryLock("x")
	require.NoError(t, err, "TryLock after release")
	require.NoError(t, l.Unlock())
	require.NoError(t, other.Unlock())
}

func TestLockWaitsUntilTheHolderUnlocks(t *testing.T) {
	checkFDs(t)
	d := newDir(t)

	held, err := d.TryLock("x")
	require.NoError(t, err)

	waiting := make(chan struct{})
	var calls int
	var waitedFor string
	d.onWait = func(name string) { // on the waiter's goroutine: no require here
		calls++
		waitedFor = name
		close(waiting)
	}
	type taken struct {
		l   *Held
		err error
	}
	got := make(chan taken, 1)
	go func() {
		l, err := d.Lock(context.Background(), "x")
		got <- taken{l, err}
	}()

	<-waiting
	require.Equal(t, "x", waitedFor, "onWait's name")
	select {
	case r := <-got:
		t.Fatalf("Lock = %v, %v while held; want it to wait", r.l, r.err)
	default:
	}
	require.NoError(t, held.Unlock())

	r := <-got
	require.NoError(t, r.err, "Lock after release")
	require.Equal(t, 1, calls, "onWait calls")
	// The lock taken on the waiter's goroutine is released on this one.
	_, err = d.TryLock("x")
	require.ErrorIs(t, err, ErrHeld)
	require.NoError(t, r.l.Unlock())
	l, err := d.TryLock("x")
	require.NoError(t, err, "TryLock after Unlock on another goroutine")
	require.NoError(t, l.Unlock())
}

func TestLockGivesUpWhenItsContextEnds(t *testing.T) {
	checkFDs(t)
	d := newDir(t)

	held, err := d.TryLock("x")
	require.NoError(t, err)
	defer held.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	l, err := d.Lock(ctx, "x")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Nil(t, l)
	require.Equal(t, `lock: waiting for "x": context deadline exceeded`, err.Error())

	// Cancelled while waiting, with a cause.
	cause := errors.New("shutting down")
	ctx, cancelCause := context.WithCancelCause(context.Background())
	waiting := make(chan struct{})
	d.onWait = func(string) { close(waiting) }
	errc := make(chan error, 1)
	go func() {
		_, err := d.Lock(ctx, "x")
		errc <- err
	}()
	<-waiting
	cancelCause(cause)
	err = <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, cause)
	d.onWait = nil

	// A context that has ended fails even when the lock is free, and
	// makes no file.
	err = d.Do(ctx, "free", func() error {
		t.Error("Do ran f with an ended context")
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	_, err = os.Lstat(filepath.Join(d.Path(), "free"))
	require.ErrorIs(t, err, fs.ErrNotExist, "Lock with an ended context made a file")

	// After giving up, the lock is still the holder's, and free once it
	// lets go.
	_, err = d.TryLock("x")
	require.ErrorIs(t, err, ErrHeld)
	require.NoError(t, held.Unlock())
	l, err = d.TryLock("x")
	require.NoError(t, err)
	require.NoError(t, l.Unlock())
}

func TestUnlockAgainOnNilOrRacingReturnsNil(t *testing.T) {
	checkFDs(t)
	d := newDir(t)

	l, err := d.TryLock("x")
	require.NoError(t, err)
	require.NoError(t, l.Unlock())
	require.NoError(t, l.Unlock(), "second Unlock")
	require.Equal(t, "x", l.Name(), "Name after Unlock")

	var nilLock *Held
	require.NoError(t, nilLock.Unlock(), "Unlock on nil")
	require.Equal(t, "", nilLock.Name())

	// The zero Held holds nothing, and its Unlock closes nothing (not fd 0).
	var zero Held
	require.NoError(t, zero.Unlock(), "Unlock on the zero Held")
	_, err = unix.FcntlInt(0, unix.F_GETFD, 0)
	require.NoError(t, err, "fd 0 after the zero Held's Unlock")

	// Racing Unlocks: one releases, all return nil.
	l, err = d.TryLock("x")
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = l.Unlock() })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "racing Unlock %d", i)
	}
	l, err = d.TryLock("x")
	require.NoError(t, err, "TryLock after racing Unlocks")
	require.NoError(t, l.Unlock())
}

func TestAFirstLockMakesAPrivateDirectoryOfItsOwn(t *testing.T) {
	checkFDs(t)
	parent := t.TempDir()

	// A umask that would take the owner's bits away does not.
	old := syscall.Umask(0o277)
	d, err := create(parent)
	syscall.Umask(old)
	require.NoError(t, err)
	defer d.Remove()

	require.True(t, filepath.IsAbs(d.Path()), "Path() = %q; want absolute", d.Path())
	require.Equal(t, parent, filepath.Dir(d.Path()))
	require.True(t, strings.HasPrefix(filepath.Base(d.Path()), "procrastinate-locks-"), "Path() = %q", d.Path())
	fi, err := os.Lstat(d.Path())
	require.NoError(t, err)
	require.True(t, fi.IsDir())
	require.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "mode of the directory")

	d2, err := create(parent)
	require.NoError(t, err)
	defer d2.Remove()
	require.NotEqual(t, d.Path(), d2.Path(), "two directories named by New, one path")

	// The default parent.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	d3, err := create("")
	require.NoError(t, err)
	defer d3.Remove()
	require.Equal(t, tmp, filepath.Dir(d3.Path()))

	// A relative parent gives an absolute path.
	t.Chdir(parent)
	d4, err := create(".")
	require.NoError(t, err)
	defer d4.Remove()
	require.Equal(t, parent, filepath.Dir(d4.Path()))

	_, err = create(filepath.Join(parent, "missing"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, "lock: make directory ")
}

func TestRemoveEndsNewLocksButNotHeldOnes(t *testing.T) {
	checkFDs(t)
	d := newDir(t)

	l, err := d.TryLock("x")
	require.NoError(t, err)
	// Another Dir on the same directory, which has taken a lock there, as
	// a child does.
	d2, err := At(d.Path())
	require.NoError(t, err)
	l2, err := d2.TryLock("z")
	require.NoError(t, err)
	require.NoError(t, l2.Unlock())

	require.NoError(t, d.Remove())
	_, err = os.Lstat(d.Path())
	require.ErrorIs(t, err, fs.ErrNotExist, "the directory after Remove")
	require.NoError(t, d.Remove(), "second Remove")

	// New locks fail, through any Dir on the removed directory.
	_, err = d.TryLock("x")
	require.ErrorIs(t, err, fs.ErrNotExist, "TryLock after Remove")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = d2.Lock(ctx, "y")
	require.ErrorIs(t, err, fs.ErrNotExist, "Lock after Remove")

	// A lock held across Remove stays held until its Unlock, which works.
	require.NoError(t, l.Unlock(), "Unlock after Remove")
}

func TestTheZeroDirRefusesEveryCall(t *testing.T) {
	var d Dir
	require.Equal(t, "", d.Path())
	_, err := d.TryLock("x")
	require.ErrorIs(t, err, errNoDir)
	_, err = d.Lock(context.Background(), "x")
	require.ErrorIs(t, err, errNoDir)
	require.ErrorIs(t, d.Do(context.Background(), "x", func() error { return nil }), errNoDir)
	require.ErrorIs(t, d.Remove(), errNoDir)
	_, err = os.Lstat("x")
	require.ErrorIs(t, err, fs.ErrNotExist, "the zero Dir made a file in the working directory")
}

// TestProcessesFightingForOneLockTakeTurns ports the gem's locking_spec: processes fight for one lock and
// write 'l' and then 'u' into one file under it; the file must read
// "lulu...", never two 'l' in a row.
func TestProcessesFightingForOneLockTakeTurns(t *testing.T) {
	checkFDs(t)
	const procs, rounds = 8, 25
	d := newDir(t)
	out := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.WriteFile(out, nil, 0o600))

	cmds := make([]*exec.Cmd, procs)
	stderrs := make([]bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = helperCmd(t, "fight", d, "pipe", outEnv+"="+out, roundsEnv+"="+strconv.Itoa(rounds))
		cmds[i].Stderr = &stderrs[i]
	}
	// Start them all before any can finish its rounds alone.
	for i, cmd := range cmds {
		require.NoError(t, cmd.Start(), "starting helper %d", i)
	}
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "helper %d; stderr: %s", i, stderrs[i].Bytes())
	}

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Len(t, b, 2*procs*rounds, "what the helpers wrote")
	if want := strings.Repeat("lu", procs*rounds); string(b) != want {
		i := 0
		for i < len(b) && b[i] == want[i] {
			i++
		}
		t.Fatalf("helpers wrote %q...; want alternating 'l' and 'u' (first wrong at %d)", b[max(0, i-10):min(len(b), i+10)], i)
	}
}
