//go:build linux

package testio_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}

func TestParseStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       testio.Stat
	}{
		{"plain", "42 (sleep) S 7 42 42 0 -1 4194304 90 0 0 0 0 0 0 0 20 3 1 0 12345 1 2 3\n",
			testio.Stat{Pid: 42, Comm: "sleep", State: 'S', PPid: 7, Nice: 3, Start: 12345}},
		{"spaces and parentheses", "42 (a) Z 1 (b) R 7 42 42 0 -1 4194304 90 0 0 0 0 0 0 0 20 -5 1 0 99 1 2 3\n",
			testio.Stat{Pid: 42, Comm: "a) Z 1 (b", State: 'R', PPid: 7, Nice: -5, Start: 99}},
		{"empty name", "42 () T 7 42 42 0 -1 4194304 90 0 0 0 0 0 0 0 20 0 1 0 1 1 2 3\n",
			testio.Stat{Pid: 42, Comm: "", State: 'T', PPid: 7, Nice: 0, Start: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testio.ParseStat([]byte(tc.line))
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "ParseStat(%q)", tc.line)
		})
	}
}

func TestParseStatRefusesWhatIsNotAStatLine(t *testing.T) {
	for _, line := range []string{
		"",
		"42 sleep S 7",
		"42 (sleep) S 7 42",
		"x (sleep) S 7 42 42 0 -1 4194304 90 0 0 0 0 0 0 0 20 0 1 0 1 1\n",
		"42 (sleep) SS 7 42 42 0 -1 4194304 90 0 0 0 0 0 0 0 20 0 1 0 1 1\n",
	} {
		_, err := testio.ParseStat([]byte(line))
		require.Error(t, err, "ParseStat(%q) = nil error; want one", line)
	}
}

func TestReadStatOfThisProcess(t *testing.T) {
	s, err := testio.ReadStat(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), s.Pid)
	require.Equal(t, os.Getppid(), s.PPid)
	require.False(t, s.Exited(), "this process's state is %c; want one that has not exited", s.State)
	require.NotZero(t, s.Start, "the start time")
	require.True(t, testio.Alive(os.Getpid()), "Alive(self) = false; want true")
}

// A child whose command name looks like the fields that follow it is read
// right from the kernel's own stat line, alive, as a zombie, and gone.
func TestReadStatOfAChildWithParenthesesInItsName(t *testing.T) {
	leakcheck.Check(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program to copy:", err)
	}
	const name = "a) Z 1 (b" // the kernel keeps 15 bytes of a name
	bin := filepath.Join(t.TempDir(), name)
	prog, err := os.ReadFile(sleep)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, prog, 0o755))
	cmd := exec.Command(bin, "60")
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
	require.Equal(t, testio.Stat{Pid: pid, Comm: name, State: s.State, PPid: os.Getpid(), Nice: s.Nice, Start: s.Start}, s)
	require.False(t, s.Exited(), "the child's state is %c; want one that has not exited", s.State)
	require.True(t, testio.Alive(pid), "Alive(%d) = false for a running child", pid)
	children, err := testio.Children(os.Getpid())
	require.NoError(t, err)
	var pids []int
	for _, c := range children {
		require.Equal(t, os.Getpid(), c.PPid, "Children(self) holds %+v", c)
		pids = append(pids, c.Pid)
	}
	require.Contains(t, pids, pid, "Children(self) does not hold the child")

	// Killed and waited for without reaping (WNOWAIT), it is a zombie.
	require.NoError(t, cmd.Process.Kill())
	var info unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	require.NoError(t, err)
	z, err := testio.ReadStat(pid)
	require.NoError(t, err)
	require.Equal(t, byte('Z'), z.State, "the state of a child that exited and was not reaped")
	require.True(t, z.Exited(), "Exited() = false for a zombie")
	require.Equal(t, s.Start, z.Start, "the start time of one process changed")
	require.False(t, testio.Alive(pid), "Alive(%d) = true for a zombie", pid)

	_ = cmd.Wait()
	reaped = true
	_, err = testio.ReadStat(pid)
	require.ErrorIs(t, err, fs.ErrNotExist, "ReadStat of a reaped child")
	require.False(t, testio.Alive(pid), "Alive(%d) = true for a reaped child", pid)
}

func TestThreadNiceLevelsSeesEveryThread(t *testing.T) {
	self, err := testio.ReadStat(os.Getpid())
	require.NoError(t, err)
	levels, err := testio.ThreadNiceLevels()
	require.NoError(t, err)
	require.NotEmpty(t, levels)
	require.Contains(t, levels, self.Nice, "the main thread's nice level %d is not among the threads'", self.Nice)
}
