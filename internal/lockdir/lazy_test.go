//go:build unix && !aix

package lockdir

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/testio"
)

// New names a directory and makes nothing; the first lock makes it, with
// mode 0700 whatever the umask, in this process or in another that uses
// the path with At.
func TestNewMakesTheDirectoryAtTheFirstLock(t *testing.T) {
	checkFDs(t)
	parent := t.TempDir()
	d, err := New(parent)
	require.NoError(t, err)
	t.Cleanup(func() { d.Remove() })
	require.Equal(t, parent, filepath.Dir(d.Path()))
	if runtime.GOOS == "linux" {
		want := fmt.Sprintf(`^procrastinate-locks-\d+-%d-\d+-[0-9a-f]{16}$`, os.Getpid())
		require.Regexp(t, regexp.MustCompile(want), filepath.Base(d.Path()), "the name says whose it is")
	}
	_, err = os.Lstat(d.Path())
	require.ErrorIs(t, err, fs.ErrNotExist, "the directory before any lock")

	// Another process's first lock, through At, makes it.
	require.Equal(t, "got", tryInChild(t, d, "first"))
	requirePrivateDir(t, d.Path())
	l, err := d.TryLock("first")
	require.NoError(t, err)
	require.Equal(t, "held", tryInChild(t, d, "first"), "the other process and this one use one directory")
	require.NoError(t, l.Unlock())

	// This process's first lock makes it too, whatever the umask.
	d2, err := New(parent)
	require.NoError(t, err)
	t.Cleanup(func() { d2.Remove() })
	require.NotEqual(t, d.Path(), d2.Path())
	old := syscall.Umask(0o277)
	l, err = d2.TryLock("x")
	syscall.Umask(old)
	require.NoError(t, err)
	require.NoError(t, l.Unlock())
	requirePrivateDir(t, d2.Path())

	// Remove before any lock: nothing there, nothing made after.
	d3, err := New(parent)
	require.NoError(t, err)
	require.NoError(t, d3.Remove())
	_, err = d3.TryLock("x")
	require.ErrorIs(t, err, fs.ErrNotExist, "TryLock after Remove")
	_, err = os.Lstat(d3.Path())
	require.ErrorIs(t, err, fs.ErrNotExist, "a lock after Remove made the directory again")
}

func requirePrivateDir(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	require.True(t, fi.IsDir(), "%s is a %v", path, fi.Mode())
	require.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "mode of %s", path)
}

// What stands at a Dir's path before its first lock is used only if it is
// a private directory of this user: a symbolic link, a file, a directory
// that others may write to, or another user's directory (planted in a
// shared /tmp) fails the lock, and nothing is made in it.
func TestFirstLockRefusesWhatIsNotPrivate(t *testing.T) {
	checkFDs(t)
	tmp := t.TempDir()
	target := filepath.Join(tmp, "target")
	require.NoError(t, os.Mkdir(target, 0o700))

	link := filepath.Join(tmp, "link")
	require.NoError(t, os.Symlink(target, link))
	file := filepath.Join(tmp, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	open := filepath.Join(tmp, "open")
	require.NoError(t, os.Mkdir(open, 0o700))
	require.NoError(t, os.Chmod(open, 0o777))
	cases := []struct{ path, want string }{
		{link, "is a symbolic link; want the directory itself"},
		{file, "not a directory"},
		{open, "writable by group or others (mode -rwxrwxrwx); want a private directory"},
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(tmp, "theirs")
		require.NoError(t, os.Mkdir(theirs, 0o700))
		require.NoError(t, os.Chown(theirs, 12345, 12345))
		cases = append(cases, struct{ path, want string }{theirs, fmt.Sprintf("owned by uid 12345, not by this user (uid %d)", os.Geteuid())})
	}
	for _, tc := range cases {
		d, err := At(tc.path)
		require.NoError(t, err)
		_, err = d.TryLock("x")
		require.EqualError(t, err, "lock: make directory "+tc.path+": "+tc.want, "TryLock in At(%q)", tc.path)
		_, err = os.Lstat(filepath.Join(tc.path, "x"))
		require.Error(t, err, "a lock file was made in %s", tc.path)
	}
	ents, err := os.ReadDir(target)
	require.NoError(t, err)
	require.Empty(t, ents, "the symbolic link was followed")

	// Remove leaves what is not a directory of this user alone.
	d, err := At(link)
	require.NoError(t, err)
	require.EqualError(t, d.Remove(), "lock: remove directory "+link+": not a directory (mode "+lmode(t, link)+")")
	_, err = os.Lstat(link)
	require.NoError(t, err, "Remove took the symbolic link")
	requirePrivateDir(t, target)
}

func lmode(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return fi.Mode().String()
}

// RemoveStale removes the directories of processes that have ended, and
// nothing else: not a live process's, not another user's, not another PID
// namespace's, not one named in another way, and never what a symbolic
// link points to.
func TestRemoveStaleRemovesOnlyTheDirectoriesOfEndedProcesses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("RemoveStale removes nothing off Linux")
	}
	checkFDs(t)
	parent := t.TempDir()
	ns, pid, start := selfForTest(t)

	// A process killed while it held a lock in its directory.
	helper := &Dir{path: parent}
	cmd := helperCmd(t, "new", helper, "held")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	dead := strings.TrimSpace(line)
	requirePrivateDir(t, dead)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, cmd.Wait())
	stdin.Close()

	// This process's own, with a lock in it.
	live, err := New(parent)
	require.NoError(t, err)
	t.Cleanup(func() { live.Remove() })
	l, err := live.TryLock("mine")
	require.NoError(t, err)
	defer l.Unlock()

	name := func(ns, pid, start uint64) string {
		return filepath.Join(parent, fmt.Sprintf("%s%d-%d-%d-0123456789abcdef", dirPrefix, ns, pid, start))
	}
	mkdir := func(path string) string {
		require.NoError(t, os.Mkdir(path, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(path, "a-lock"), nil, 0o600))
		return path
	}
	// This pid, started at another time: a process that ended, whose pid
	// was given to another.
	reused := mkdir(name(ns, pid, start+1))
	otherNS := mkdir(name(ns+1, pid, start+1))
	oldStyle := mkdir(filepath.Join(parent, dirPrefix+"123456789"))
	target := mkdir(filepath.Join(parent, "target"))
	link := name(ns, pid, start+2)
	require.NoError(t, os.Symlink(target, link))
	file := name(ns, pid, start+3)
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	var theirs string
	if os.Geteuid() == 0 {
		theirs = mkdir(name(ns, pid, start+4))
		require.NoError(t, os.Chown(theirs, 12345, 12345))
	}

	removed, err := RemoveStale(parent)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{dead, reused}, removed, "the directories RemoveStale removed")
	for _, gone := range []string{dead, reused} {
		_, err := os.Lstat(gone)
		require.ErrorIs(t, err, fs.ErrNotExist, "%s after RemoveStale", gone)
	}
	for _, kept := range []string{live.Path(), otherNS, oldStyle, link, file, filepath.Join(target, "a-lock"), theirs} {
		if kept == "" {
			continue
		}
		_, err := os.Lstat(kept)
		require.NoError(t, err, "RemoveStale took %s", kept)
	}
	requireHeldHere(t, live, "mine")
}

// requireHeldHere checks that name is held in d.
func requireHeldHere(t *testing.T, d *Dir, name string) {
	t.Helper()
	_, err := d.TryLock(name)
	require.ErrorIs(t, err, ErrHeld)
}

// selfForTest returns this process's PID namespace, pid and start time as
// /proc says them, without the package's own code.
func selfForTest(t *testing.T) (ns, pid, start uint64) {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat("/proc/self/ns/pid", &st))
	s, err := testio.ReadStat(os.Getpid())
	require.NoError(t, err)
	return st.Ino, uint64(os.Getpid()), s.Start
}
