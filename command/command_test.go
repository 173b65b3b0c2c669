//go:build linux

package command_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/command"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// sh is a shell command line; args become $0, $1, ...
func sh(script string, args ...string) command.Cmd {
	return command.Cmd{Path: script, Args: args, Shell: true}
}

// fifo makes a FIFO in a temporary folder, for a command to tell the
// test something while it runs.
func fifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, unix.Mkfifo(p, 0o600), "mkfifo")
	return p
}

// readPids reads one line of pids from the FIFO p; it waits for the
// command r to write them, and fails when r ends first.
func readPids(t *testing.T, p string, r *result.Result[command.Result]) []int {
	t.Helper()
	type read struct {
		b   []byte
		err error
	}
	got := make(chan read, 1)
	go func() {
		b, err := os.ReadFile(p)
		got <- read{b, err}
	}()
	var b []byte
	select {
	case rd := <-got:
		require.NoError(t, rd.err, "reading the FIFO")
		b = rd.b
	case <-r.Done():
		// Let the reader go: open the FIFO for writing, and close it.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-got
		_, err := r.Value()
		t.Fatalf("the command ended before it wrote its pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		require.NoError(t, err, "a pid from the FIFO: %q", b)
		pids = append(pids, n)
	}
	require.NotEmpty(t, pids, "pids from the FIFO")
	return pids
}

// requireTreeGone checks that the processes of treeScript, whose pids
// are pids, have exited: all of them where the build ends what a command
// left outside its group; else the shell and the sleep of its group, and
// the sleep that left it (setsid) is killed here.
func requireTreeGone(t *testing.T, pids []int) {
	t.Helper()
	require.Len(t, pids, 3, "the pids of treeScript")
	if !command.AdoptsLeftovers {
		defer unix.Kill(pids[2], unix.SIGKILL)
		pids = pids[:2]
	}
	requireGone(t, pids)
}

// requireGone checks that each pid has exited.
func requireGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		gone, err := testio.WaitExited(pid, 0, 5*time.Second)
		require.NoError(t, err, "waiting for pid %d", pid)
		require.True(t, gone, "process %d of the command is alive 5 s after its call ended; want it gone", pid)
	}
}

func TestScheduleKeepsStdoutAndCosts(t *testing.T) {
	d := start(t, strategy.Throttled(2))
	c := command.Cmd{Path: "sh", Args: []string{"-c", "read x; echo out $x; echo err >&2"},
		Stdin: []byte("in\n"), Stdout: command.Output{Mode: command.All}}
	res, err := command.Schedule(d, c).Value()
	require.NoError(t, err, "Value()")
	require.Equal(t, "out in\n", string(res.Stdout), "Stdout")
	require.Equal(t, "err\n", string(res.Stderr), "Stderr (the default tail)")
	require.Equal(t, 0, res.ExitCode, "ExitCode")
	require.Equal(t, 1, res.Tries, "Tries")
	require.NotZero(t, res.Pid, "Pid")
	require.Positive(t, res.MaxRSS, "MaxRSS")
	require.Positive(t, res.Duration, "Duration")
}

func TestNonZeroExitIsAnExitErrorWithTheResult(t *testing.T) {
	d := start(t, strategy.Throttled(2))
	_, err := command.Schedule(d, sh("echo partial; echo 'it broke' >&2; exit 3")).Value()
	var ee *command.ExitError
	require.ErrorAs(t, err, &ee, "Value() of a command that exits 3")
	require.Equal(t, 3, ee.Result.ExitCode, "ExitCode")
	require.Equal(t, "it broke\n", string(ee.Result.Stderr), "Stderr")
	require.Contains(t, err.Error(), "exit status 3", "Error()")
	require.Contains(t, err.Error(), "it broke", "Error()")

	_, err = command.Schedule(d, sh("kill -9 $$")).Value()
	require.ErrorAs(t, err, &ee, "Value() of a command killed by a signal")
	require.Equal(t, syscall.SIGKILL, ee.Result.Signal, "Signal")
	require.Equal(t, -1, ee.Result.ExitCode, "ExitCode")
}

func TestAMissingProgramExits127(t *testing.T) {
	d := start(t, strategy.Throttled(1))
	_, err := command.Schedule(d, command.Cmd{Path: "no-such-program-here"}).Value()
	var ee *command.ExitError
	require.ErrorAs(t, err, &ee, "Value() of a missing program")
	require.Equal(t, 127, ee.Result.ExitCode, "ExitCode")
	require.Contains(t, ee.Result.StartError, "no-such-program-here", "StartError")
}

func TestRetriesOnExitStatus(t *testing.T) {
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
	// Fails with status 1 until its third run.
	count := func() command.Cmd {
		f := filepath.Join(t.TempDir(), "count")
		c := sh(`n=$(cat "$0" 2>/dev/null || echo 0); echo $((n+1)) > "$0"; [ "$n" -ge 2 ]`, f)
		c.Stdout = command.Output{Mode: command.All}
		return c
	}
	c := count()
	c.Retries, c.RetryDelay = 3, time.Millisecond
	res, err := command.Schedule(d, c).Value()
	require.NoError(t, err, "Value() with 3 retries of a command that fails twice")
	require.Equal(t, 3, res.Tries, "Tries")

	c = count()
	c.Retries = 1
	_, err = command.Schedule(d, c).Value()
	var ee *command.ExitError
	require.ErrorAs(t, err, &ee, "Value() with 1 retry of a command that fails twice")
	require.Equal(t, 2, ee.Result.Tries, "Tries")

	c = count()
	c.Retries, c.RetryExitCodes = 3, []int{75}
	_, err = command.Schedule(d, c).Value()
	require.ErrorAs(t, err, &ee, "Value() of a command whose status is not retried")
	require.Equal(t, 1, ee.Result.Tries, "Tries when only status 75 is retried and it exits 1")
}

// treeScript starts two sleeps, one in a group of its own, and writes the
// pids of the shell and of both to the FIFO $0.
const treeScript = `sleep 1000 & a=$!; setsid sleep 1000 & echo "$$ $a $!" > "$0"; wait`

func TestATimeoutEndsTheWholeTree(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    strategy.Strategy
	}{
		{"fresh child", strategy.Throttled(1)},
		{"reused child", strategy.Throttled(1, strategy.Reuse(strategy.Unlimited))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := start(t, tc.s)
			f := fifo(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := command.Schedule(d, sh(treeScript, f), task.WithContext(ctx))
			pids := readPids(t, f, r)
			cancel()
			_, err := r.Value()
			var ce *result.CancelError
			require.ErrorAs(t, err, &ce, "Value() of a cancelled command")
			requireTreeGone(t, pids)
		})
	}
}

func TestCloseEndsTheWholeTree(t *testing.T) {
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
	f := fifo(t)
	r := command.Schedule(d, sh(treeScript, f))
	pids := readPids(t, f, r)
	d.Close()
	_, err := r.Value()
	require.Error(t, err, "Value() of a command whose dispatcher was closed")
	requireTreeGone(t, pids)
}

// daemonScript starts a daemon (setsid, out of the command's group and
// session) that writes its pid and session to the FIFO $0, and prints
// them once the daemon is up.
const daemonScript = `setsid sh -c 'echo $$ $(cut -d" " -f6 /proc/$$/stat) > "$0"; exec sleep 1000' "$0" & read p s < "$0"; echo $p $s; echo $PPID`

func TestADaemonDoesNotOutliveItsCallInAReusedChild(t *testing.T) {
	if !command.AdoptsLeftovers {
		t.Skip("this build has no subreaper (the portable backend, as on macOS): a daemon that left the command's group with setsid outlives its call")
	}
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
	c := sh(daemonScript, fifo(t))
	c.Stdout = command.Output{Mode: command.All}
	res, err := command.Schedule(d, c).Value()
	require.NoError(t, err, "Value() of the daemon's starter")
	f := strings.Fields(string(res.Stdout))
	require.Len(t, f, 3, "stdout %q: want the daemon's pid and session, and the worker's pid", res.Stdout)
	require.Equal(t, f[0], f[1], "the daemon's session: want it to lead one of its own")
	pid, _ := strconv.Atoi(f[0])
	require.False(t, testio.Alive(pid), "the daemon %d is alive after its call answered; want it ended with the call", pid)
	require.GreaterOrEqual(t, res.Leftovers, 1, "Leftovers")

	// The worker lives on: the call, not the child, ended the daemon.
	again, err := command.Schedule(d, command.Cmd{Path: "sh", Args: []string{"-c", "echo $PPID"},
		Stdout: command.Output{Mode: command.All}}).Value()
	require.NoError(t, err, "Value() of the second command")
	require.Equal(t, f[2], strings.TrimSpace(string(again.Stdout)), "the second command's worker; want the first one's")
}

func TestOutputModes(t *testing.T) {
	d := start(t, strategy.Throttled(2, strategy.Reuse(strategy.Unlimited)))
	big := `i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done`

	c := sh(big)
	c.Stdout = command.Output{Mode: command.Tail, Size: 10}
	res, err := command.Schedule(d, c).Value()
	require.NoError(t, err, "Tail")
	require.Equal(t, "\nline1999\n", string(res.Stdout), "the last 10 bytes")
	require.Positive(t, res.StdoutDropped, "StdoutDropped")

	c.Stdout = command.Output{Mode: command.Spool, Size: 100, Dir: t.TempDir()}
	res, err = command.Schedule(d, c).Value()
	require.NoError(t, err, "Spool")
	require.Len(t, res.Stdout, 100, "what stays in memory")
	require.NotEmpty(t, res.StdoutFile, "StdoutFile")
	all, err := os.ReadFile(res.StdoutFile)
	require.NoError(t, err, "reading the spool file")
	require.True(t, strings.HasPrefix(string(all), "line0\n") && strings.HasSuffix(string(all), "line1999\n"), "the spool file holds all of stdout")
	require.Len(t, strings.Split(strings.TrimSpace(string(all)), "\n"), 2000, "lines in the spool file")

	c.Stdout = command.Output{}
	res, err = command.Schedule(d, c).Value()
	require.NoError(t, err, "Default")
	require.Empty(t, res.Stdout, "Stdout, discarded by default")
}

func TestLimitsBindTheCommand(t *testing.T) {
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
	base, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	require.NoError(t, err, "getpriority")
	c := command.Cmd{Path: "sh", Args: []string{"-c", "ulimit -v; ulimit -t; nice"},
		Stdout: command.Output{Mode: command.All},
		Limits: command.Limits{AddressSpace: 512 << 20, CPUTime: 2500 * time.Millisecond, Nice: 3}}
	res, err := command.Schedule(d, c).Value()
	require.NoError(t, err, "Value()")
	want := "524288\n3\n" + strconv.Itoa(20-base+3) + "\n"
	require.Equal(t, want, string(res.Stdout), "RLIMIT_AS in KiB, RLIMIT_CPU in s, nice")
}

func TestScheduleOnAClosedDispatcherFails(t *testing.T) {
	d := start(t, strategy.Throttled(1))
	d.Close()
	_, err := command.Schedule(d, command.Cmd{Path: "true"}).Value()
	require.ErrorIs(t, err, dispatcher.ErrClosed, "Value() after Close")
	require.False(t, errors.As(err, new(*command.ExitError)), "an ExitError for a command that never ran")
}

func TestCmdTimeoutStopsTheTreeAndKeepsTheWorker(t *testing.T) {
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
	ppid := func() string {
		res, err := command.Schedule(d, command.Cmd{Path: "sh", Args: []string{"-c", "echo $PPID"},
			Stdout: command.Output{Mode: command.All}}).Value()
		require.NoError(t, err, "Value() of echo $PPID")
		return strings.TrimSpace(string(res.Stdout))
	}
	before := ppid()
	f := fifo(t)
	c := sh(treeScript, f)
	c.Timeout = 2 * time.Second // room for the tree to start on a loaded machine
	r := command.Schedule(d, c)
	pids := readPids(t, f, r)
	_, err := r.Value()
	var ee *command.ExitError
	require.ErrorAs(t, err, &ee, "Value() of a command over its Timeout")
	require.True(t, ee.Result.Stopped, "Stopped")
	require.Equal(t, syscall.SIGTERM, ee.Result.Signal, "Signal: the first step of the default Stop")
	if !command.AdoptsLeftovers {
		defer unix.Kill(pids[2], unix.SIGKILL) // left its group: see requireTreeGone
		pids = pids[:2]
	}
	for _, pid := range pids {
		require.False(t, testio.Alive(pid), "process %d of the command is alive after its call answered", pid)
	}
	require.Equal(t, before, ppid(), "the worker after a command's timeout; want the same one")
}

func TestAnEscapedProcessHoldingStdoutDoesNotHoldTheCall(t *testing.T) {
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
	// Out of the group, with no environment: the clean-up cannot tell
	// it as the command's. It holds the stdout pipe.
	c := sh(`env -i setsid -f sh -c 'echo $$ > "$0"; exec sleep 1000' "$0"; read p < "$0"; echo $p`, fifo(t))
	c.Stdout = command.Output{Mode: command.All}
	res, err := command.Schedule(d, c).Value()
	require.NoError(t, err, "Value()")
	pid, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
	require.NoError(t, err, "the escaped process's pid in stdout %q", res.Stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx), "Shutdown")
	if !command.AdoptsLeftovers {
		// Without a subreaper, nothing ends it: the call's return was
		// the point here.
		require.NoError(t, unix.Kill(pid, unix.SIGKILL), "killing the escaped process %d", pid)
		return
	}
	requireGone(t, []int{pid}) // with the child that ran the command
}
