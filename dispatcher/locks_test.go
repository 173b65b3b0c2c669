package dispatcher_test

// Named locks shared by a dispatcher and its children (task.Lock,
// Dispatcher.Lock): the gem's lock_spec and locking_spec, ported, and the
// life of the lock directory.

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// requireHeld checks that the parent cannot take the named lock of d now.
func requireHeld(t *testing.T, d *dispatcher.Dispatcher, name string) {
	t.Helper()
	l, err := d.TryLock(name)
	if err == nil {
		l.Unlock()
	}
	require.ErrorIs(t, err, lock.ErrHeld, "the parent's TryLock(%q) = %v; want lock.ErrHeld", name, err)
}

// requireFree checks that the parent can take the named lock of d now,
// and releases it.
func requireFree(t *testing.T, d *dispatcher.Dispatcher, name string) {
	t.Helper()
	l, err := d.TryLock(name)
	require.NoError(t, err, "the parent's TryLock(%q)", name)
	require.NoError(t, l.Unlock())
}

// tryInChild runs tryLock on d and returns what it said: "held" or "taken".
func tryInChild(t *testing.T, d *dispatcher.Dispatcher, name string, opts ...task.CallOption) string {
	t.Helper()
	got, err := waitValue(t, tryLock.Schedule(d, name, opts...))
	require.NoError(t, err, "tryLock(%q) in a child", name)
	return got
}

// lock_spec: while a task holds a lock, neither the parent nor another
// child can take it; once the task released it (twice: the second release
// does nothing), both can; and a lock the parent holds keeps the children
// out.
func TestLockSpec_HeldAndReleased(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Simple())

	r := holdLock.Schedule(d, lockArg{Gate: g.arg(), Name: "a"})
	g.waitStarted(t, 1) // the task holds "a"

	requireHeld(t, d, "a")
	require.Equal(t, "held", tryInChild(t, d, "a"), "another child took the lock a task holds")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := d.Lock(ctx, "a")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the parent's Lock gives up when its ctx ends")
	requireFree(t, d, "b") // other names are other locks

	g.open(t, 1)
	g.waitStarted(t, 1) // the task released "a" and still runs

	l, err := d.TryLock("a")
	require.NoError(t, err, "the parent's TryLock after the task released the lock")
	require.Equal(t, "held", tryInChild(t, d, "a"), "a child took the lock the parent holds")
	require.NoError(t, l.Unlock())
	require.NoError(t, l.Unlock(), "the second Unlock")
	require.Equal(t, "taken", tryInChild(t, d, "a"), "a child could not take the lock once the parent released it")

	g.open(t, 1)
	_, err = waitValue(t, r)
	require.NoError(t, err)
	shutdown(t, d, nil)
}

// lock_spec: task.Synchronize holds the lock while f runs, and only then.
func TestLockSpec_SynchronizeHoldsOnlyInside(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Simple())
	r := syncLock.Schedule(d, lockArg{Gate: g.arg(), Name: "s"})

	g.waitStarted(t, 1)
	requireFree(t, d, "s") // before Synchronize
	g.open(t, 1)

	g.waitStarted(t, 1)
	requireHeld(t, d, "s") // inside f
	g.open(t, 1)

	g.waitStarted(t, 1)
	requireFree(t, d, "s") // after Synchronize, in the same live task
	g.open(t, 1)

	_, err := waitValue(t, r)
	require.NoError(t, err)
	shutdown(t, d, nil)
}

// locking_spec: "Scheduling 100 processes that fight for the same lock".
// Each takes the lock and writes 'l', then 'u', to a shared file: 200
// characters, and never two 'l' in a row.
func TestLockingSpec_HundredTasksFightForOneLock(t *testing.T) {
	checkLeaks(t)
	const tasks = 100
	file := filepath.Join(t.TempDir(), "sequence")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	d := start(t, strategy.Throttled(4))

	rs := make([]*result.Result[bool], tasks)
	for i := range rs {
		rs[i] = takeTurns.Schedule(d, turnsArg{File: file, Name: "l1", Hold: 2 * time.Millisecond})
	}
	waited := 0
	for i, r := range rs {
		w, err := waitValue(t, r)
		require.NoError(t, err, "task %d", i)
		if w {
			waited++
		}
	}
	shutdown(t, d, nil)
	t.Logf("%d of %d tasks found the lock held and waited", waited, tasks)

	seq := readFile(t, file)
	require.Len(t, seq, 2*tasks)
	require.NotContains(t, seq, "ll", "two tasks held the lock at once")
	require.Equal(t, strings.Repeat("lu", tasks), seq)
}

// The lock directory: made by the first lock (a child's, here), private
// (0700), the one the parent's locks use too, and gone once Shutdown or
// Close has returned.
func TestLockDirectoryIsMadeByTheFirstLockAndGoneAtTheEnd(t *testing.T) {
	for _, how := range []string{"Shutdown", "Close"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			d := start(t, strategy.Simple())
			dir := lockDirOf(d)
			require.True(t, filepath.IsAbs(dir), "lock directory %q; want an absolute path", dir)
			_, err := os.Lstat(dir)
			require.ErrorIs(t, err, fs.ErrNotExist, "the lock directory before any lock")

			// A child's lock makes it, and is a file in this very directory.
			require.Equal(t, "taken", tryInChild(t, d, "from-a-child"))
			fi, err := os.Lstat(dir)
			require.NoError(t, err, "the lock directory after a child's lock")
			require.True(t, fi.IsDir(), "lock directory is a %v", fi.Mode())
			require.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "mode of the lock directory")
			_, err = os.Lstat(filepath.Join(dir, "from-a-child"))
			require.NoError(t, err, "the child's lock file is not in the dispatcher's directory")
			requireFree(t, d, "from-a-child")

			if how == "Close" {
				require.NoError(t, d.Close())
			} else {
				shutdown(t, d, nil)
			}
			_, err = os.Lstat(dir)
			require.ErrorIs(t, err, fs.ErrNotExist, "the lock directory outlived %s", how)
			_, err = d.TryLock("late")
			require.ErrorIs(t, err, fs.ErrNotExist, "TryLock after %s", how)
		})
	}
}

// Names that are not plain file names are refused with a *lock.NameError,
// in a task (task.Lock, TryLock, Synchronize) as in the parent.
func TestLockRefusesBadNames(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Simple())
	bad := []struct{ name, reason string }{
		{"", "empty"},
		{".", `is "."`},
		{"..", `is ".."`},
		{"a/b", "contains '/'"},
		{"../escape", "contains '/'"},
		{"nul\x00byte", "contains a NUL byte"},
		{strings.Repeat("x", 256), "256 bytes long; at most 255 allowed"},
	}
	var names, want []string
	for _, b := range bad {
		names = append(names, b.name)
		want = append(want, b.reason)
	}
	got, err := waitValue(t, badLockNames.Schedule(d, names))
	require.NoError(t, err)
	require.Equal(t, want, got, "the reasons of the task's NameErrors")

	for _, b := range bad {
		var ne *lock.NameError
		_, err := d.Lock(context.Background(), b.name)
		require.ErrorAs(t, err, &ne, "the parent's Lock(%q)", b.name)
		require.Equal(t, b.reason, ne.Reason)
		_, err = d.TryLock(b.name)
		require.ErrorAs(t, err, &ne, "the parent's TryLock(%q)", b.name)
	}
	// A name at the limit, with dots and spaces, is fine.
	requireFree(t, d, strings.Repeat("y", 255))
	requireFree(t, d, "...a lock. with dots")
	shutdown(t, d, nil)
}

// task.Lock waits while the lock is held, and gives up when its ctx ends.
func TestLockGivesUpWhenItsContextEnds(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Simple())
	held, err := d.Lock(context.Background(), "busy")
	require.NoError(t, err)
	defer held.Unlock()

	const wait = 200 * time.Millisecond
	begin := time.Now()
	msg, err := waitValue(t, lockGivesUp.Schedule(d, waitArg{Name: "busy", Wait: wait}))
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(begin), wait, "task.Lock gave up before its ctx ended")
	require.Contains(t, msg, `"busy"`)
	require.NoError(t, held.Unlock())
	shutdown(t, d, nil)
}

// A task whose call has a deadline (task.WithTimeout) takes locks too: its
// context carries the lock directory along with the deadline.
func TestTaskLockUnderADeadline(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Simple())
	require.Equal(t, "taken", tryInChild(t, d, "deadline", task.WithTimeout(serverWait)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.Equal(t, "taken", tryInChild(t, d, "ctx", task.WithContext(ctx)))
	shutdown(t, d, nil)
}

// Each dispatcher has its own lock directory: the same name in two
// dispatchers is two locks.
func TestLocksOfTwoDispatchersAreSeparate(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d1 := start(t, strategy.Simple())
	d2 := start(t, strategy.Simple())
	require.NotEqual(t, lockDirOf(d1), lockDirOf(d2))

	r := holdLock.Schedule(d1, lockArg{Gate: g.arg(), Name: "a"})
	g.waitStarted(t, 1)
	requireHeld(t, d1, "a")
	require.Equal(t, "held", tryInChild(t, d1, "a"))
	requireFree(t, d2, "a")
	require.Equal(t, "taken", tryInChild(t, d2, "a"), "a child of the other dispatcher")

	g.open(t, 1)
	g.waitStarted(t, 1)
	g.open(t, 1)
	_, err := waitValue(t, r)
	require.NoError(t, err)
	shutdown(t, d1, nil)
	shutdown(t, d2, nil)
	for _, dir := range []string{lockDirOf(d1), lockDirOf(d2)} {
		_, err := os.Lstat(dir)
		require.ErrorIs(t, err, fs.ErrNotExist, "%s outlived its dispatcher", dir)
	}
}
