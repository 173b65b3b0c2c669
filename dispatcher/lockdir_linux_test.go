package dispatcher_test

// The lock directory's life across processes: made only when a lock is
// used, and removed by a later Start when the parent that made it died
// without Shutdown. A helper process (this test binary, re-executed in the
// role lockOwnerEnv names) is the parent that dies.

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// lockOwnerEnv makes this test binary a parent that takes a lock (see the
// init function below), prints its dispatcher's lock directory, and waits
// to be killed.
const lockOwnerEnv = "PROCRASTINATE_TEST_LOCK_OWNER"

func init() {
	if _, ok := os.LookupEnv(lockOwnerEnv); !ok {
		return
	}
	os.Unsetenv(lockOwnerEnv)
	d, err := dispatcher.Start(strategy.Simple())
	if err == nil {
		_, err = d.TryLock("owned")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock owner:", err)
		os.Exit(3)
	}
	fmt.Println(lockDirOf(d))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test kills it
	os.Exit(4)
}

// startLockOwner starts a parent that holds a lock in its dispatcher's
// directory, and returns it with the directory's path.
func startLockOwner(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), lockOwnerEnv+"=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the lock owner's stderr: %s", &stderr)
	dir := strings.TrimSpace(line)
	fi, err := os.Lstat(dir)
	require.NoError(t, err, "the lock owner's directory after its TryLock")
	require.True(t, fi.IsDir())
	return cmd, dir
}

// kill ends the lock owner with SIGKILL: no Shutdown, no deferred call.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal(), "how the lock owner ended")
}

// A dispatcher whose tasks and parent take no lock leaves nothing in the
// temporary directory, not even while it runs.
func TestUnusedLocksMakeNoDirectory(t *testing.T) {
	checkLeaks(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	d := start(t, strategy.Simple())
	v, err := await(t, square.Schedule(d, 4))
	require.NoError(t, err)
	require.Equal(t, 16, v)
	require.True(t, strings.HasPrefix(lockDirOf(d), tmp+"/"), "lock directory %s; want it under $TMPDIR (%s)", lockDirOf(d), tmp)
	_, err = os.Lstat(lockDirOf(d))
	require.ErrorIs(t, err, fs.ErrNotExist, "the lock directory of a dispatcher that took no lock")
	shutdown(t, d, nil)
	ents, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, ents, "what the dispatcher left in $TMPDIR")
}

// A parent killed with SIGKILL after it used a lock leaves its directory
// behind; the next Start, in any process of the same user, removes it.
// The directory of a parent that still runs is kept.
func TestLockDirectoryOfADeadParentIsRemoved(t *testing.T) {
	checkLeaks(t)
	t.Setenv("TMPDIR", t.TempDir())
	dead, deadDir := startLockOwner(t)
	live, liveDir := startLockOwner(t)
	require.NotEqual(t, deadDir, liveDir)
	kill(t, dead)
	_, err := os.Lstat(deadDir)
	require.NoError(t, err, "the directory of a parent killed with SIGKILL")

	d := start(t, strategy.Simple())
	_, err = os.Lstat(deadDir)
	require.ErrorIs(t, err, fs.ErrNotExist, "the directory of a dead parent after the next Start")
	fi, err := os.Lstat(liveDir)
	require.NoError(t, err, "the directory of a parent that still runs, after another's Start")
	require.True(t, fi.IsDir())
	ents, err := os.ReadDir(liveDir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "the live parent's lock file")
	shutdown(t, d, nil)

	kill(t, live)
	d = start(t, strategy.Simple())
	_, err = os.Lstat(liveDir)
	require.ErrorIs(t, err, fs.ErrNotExist, "the directory of the second parent, once it was killed, after the next Start")
	require.NoError(t, d.Shutdown(context.Background()))
}
