package procman_test

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

func TestExitSaysHowTheChildEnded(t *testing.T) {
	for _, tc := range []struct {
		name       string
		task, arg  string
		wantCode   int
		wantSignal syscall.Signal
		wantStderr string
	}{
		{"ExitCode", "exit", "42", 42, 0, ""},
		{"ExitZero", "exit", "0", 0, 0, ""},
		{"KilledBySIGKILL", "kill-self", strconv.Itoa(int(syscall.SIGKILL)), -1, syscall.SIGKILL, ""},
		// Go's runtime does not catch SIGTERM: the child dies of it.
		{"KilledBySIGTERM", "kill-self", strconv.Itoa(int(syscall.SIGTERM)), -1, syscall.SIGTERM, ""},
		// Go's runtime catches SIGSEGV, even one sent with kill: it
		// prints the signal and the goroutines on stderr and exits 2
		// (GOTRACEBACK=crash would make it die of the signal).
		{"SIGSEGVBecomesExit2", "kill-self", strconv.Itoa(int(syscall.SIGSEGV)), 2, 0, "SIGSEGV: segmentation violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			require.NoError(t, err)
			defer stderr.Close()
			m := newManager(t)
			p, c := start(t, m, procman.Spec{Stderr: stderr, Invocation: work(tc.task, tc.arg, true)})
			e := waitExit(t, m, c)
			require.Equal(t, p.Pid(), e.Pid)
			require.Equal(t, tc.wantCode, e.ExitCode, "%v", e)
			require.Equal(t, tc.wantSignal, e.Signal, "%v", e)
			require.False(t, e.Core)
			require.NoError(t, e.Err)
			require.Equal(t, tc.wantCode == 0 && tc.wantSignal == 0, e.Success())
			require.Positive(t, e.Duration)
			require.Contains(t, e.String(), strconv.Itoa(p.Pid()))
			if tc.wantSignal != 0 {
				require.Contains(t, e.String(), "killed by signal "+strconv.Itoa(int(tc.wantSignal)))
			} else {
				require.Contains(t, e.String(), "exited with code "+strconv.Itoa(tc.wantCode))
			}
			out, err := os.ReadFile(stderr.Name())
			require.NoError(t, err)
			if tc.wantStderr == "" {
				require.Empty(t, string(out))
			} else {
				require.Contains(t, string(out), tc.wantStderr)
			}
		})
	}
}

func TestExitReportsTheChildsRusage(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	_, burn := start(t, m, procman.Spec{Invocation: work("burn", "", true)})
	_, alloc := start(t, m, procman.Spec{Invocation: work("alloc", "", true)})
	require.NoError(t, m.WaitForAllChildren())

	// The child burnt until its own getrusage said 50 ms of user time;
	// the kernel's figures only grow, so its parent sees at least that.
	// (System time is not checked: the kernel splits CPU time between
	// user and system by sampling, and a short child may show 0.)
	require.True(t, burn.exit.Success(), "%v", burn.exit)
	require.GreaterOrEqual(t, burn.exit.UserTime, 50*time.Millisecond)
	require.Positive(t, burn.exit.MaxRSS)

	require.True(t, alloc.exit.Success(), "%v", alloc.exit)
	require.GreaterOrEqual(t, alloc.exit.MaxRSS, int64(64<<20), "a child that touched 64 MiB; MaxRSS is in bytes")
	require.Less(t, alloc.exit.MaxRSS, int64(64<<30), "MaxRSS is in bytes, not scaled by 1024 once too often")
}

// A program that ignores SIGCHLD has the kernel reap its children, and one
// that waits on any child takes their statuses: either way the status is
// gone before the manager asks. The manager must report that, not ask again
// for ever. The test takes the statuses with wait4 on the children's pids
// (signal.Ignore(SIGCHLD) could not be undone: signal.Reset leaves it
// ignored, and every later test would lose its statuses).
func TestExitStatusTakenBySomeoneElseIsReportedNotWaitedForForever(t *testing.T) {
	leakcheck.Check(t)
	steal := func(pid int) {
		t.Helper()
		waitExited(t, pid)
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, 0, nil)
		require.NoError(t, err)
		require.Equal(t, pid, got)
	}
	m := newManager(t)

	p, c := start(t, m, procman.Spec{Invocation: work("echo", "x", true)})
	steal(p.Pid())
	e := waitExit(t, m, c)
	require.ErrorIs(t, e.Err, syscall.ECHILD, "%v", e)
	require.Equal(t, -1, e.ExitCode)
	require.Zero(t, e.Signal)
	require.Equal(t, [][]byte{[]byte("x")}, c.answers(), "its answer is still delivered")

	// The same in Teardown, which waits for each child it kills.
	p, blocked := start(t, m, procman.Spec{Invocation: work("block", "", true)})
	waitHeard(t, m, blocked, wire.KindProgress)
	require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGKILL))
	steal(p.Pid())
	require.NoError(t, m.Teardown())
	require.NotNil(t, blocked.exit)
	require.ErrorIs(t, blocked.exit.Err, syscall.ECHILD, "%v", blocked.exit)
}
