//go:build linux

package testio_test

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
)

// A child is waited for until it exits, and left unreaped; a reaped one
// has exited too.
func TestWaitExitedSeesAChildExitAndReapsNothing(t *testing.T) {
	leakcheck.Check(t)
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	s, err := testio.ReadStat(pid)
	require.NoError(t, err)

	exited, err := testio.WaitExited(pid, s.Start, 20*time.Millisecond)
	require.NoError(t, err)
	require.False(t, exited, "WaitExited of a sleeping child = true; want false after its wait")

	require.NoError(t, cmd.Process.Kill())
	exited, err = testio.WaitExited(pid, s.Start, 10*time.Second)
	require.NoError(t, err)
	require.True(t, exited, "WaitExited of a killed child = false; want true")
	z, err := testio.ReadStat(pid)
	require.NoError(t, err)
	require.Equal(t, byte('Z'), z.State, "the child after WaitExited; want a zombie, not reaped")

	_ = cmd.Wait()
	reaped = true
	exited, err = testio.WaitExited(pid, s.Start, 0)
	require.NoError(t, err)
	require.True(t, exited, "WaitExited of a reaped child = false; want true")
}

// A process that is not this one's child is waited for all the same.
func TestWaitExitedSeesAnOrphanExit(t *testing.T) {
	leakcheck.Check(t)
	cmd := exec.Command("sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	s, err := testio.ReadStat(pid)
	require.NoError(t, err)
	require.NotEqual(t, os.Getpid(), s.PPid, "the orphan is a child of this process")

	exited, err := testio.WaitExited(pid, s.Start, 20*time.Millisecond)
	require.NoError(t, err)
	require.False(t, exited, "WaitExited of a sleeping orphan = true; want false after its wait")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	exited, err = testio.WaitExited(pid, s.Start, 10*time.Second)
	require.NoError(t, err)
	require.True(t, exited, "WaitExited of a killed orphan = false; want true")
}

// A pid whose start time is not the one given names another process: the
// one asked about has exited.
func TestWaitExitedOfAnotherStartTimeIsAtOnce(t *testing.T) {
	self, err := testio.ReadStat(os.Getpid())
	require.NoError(t, err)
	exited, err := testio.WaitExited(os.Getpid(), self.Start+1, time.Minute)
	require.NoError(t, err)
	require.True(t, exited, "WaitExited of this process with another start time = false; want true")
	exited, err = testio.WaitExited(os.Getpid(), self.Start, 0)
	require.NoError(t, err)
	require.False(t, exited, "WaitExited of this running process = true")
}
