package procman_test

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
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// grandchildOf starts a child that starts "sleep 60" and returns the
// grandchild's pid and start time.
func grandchildOf(t *testing.T, m *procman.Manager, arg string) (*procman.Process, *child, int, uint64) {
	t.Helper()
	p, c := start(t, m, procman.Spec{Invocation: work("grandchild", arg, true)})
	msg := waitHeard(t, m, c, wire.KindProgress)
	pid, err := strconv.Atoi(string(msg.payload))
	require.NoError(t, err)
	s, err := testio.ReadStat(pid)
	require.NoError(t, err, "grandchild %d is not running", pid)
	st := s.Start
	t.Cleanup(func() {
		if !isGone(pid, st) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return p, c, pid, st
}

func TestKillProcessesSignalsEachChildsGroup(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	_, c, gpid, gstart := grandchildOf(t, m, "block")
	_, c2 := start(t, m, procman.Spec{Invocation: work("block", "", true)})
	waitHeard(t, m, c2, wire.KindProgress)

	require.NoError(t, m.KillProcesses(syscall.SIGTERM))
	// The grandchild goes before any Step, so before the manager reaps
	// the child (and kills what is left of its group): the SIGTERM
	// reached the whole group.
	waitGone(t, 10*time.Second, map[int]uint64{gpid: gstart})

	require.NoError(t, m.WaitForAllChildren())
	for _, c := range []*child{c, c2} {
		require.Equal(t, syscall.SIGTERM, c.exit.Signal, "%v", c.exit)
		require.Equal(t, -1, c.exit.ExitCode)
		require.NoError(t, c.exit.Err)
	}
	require.NoError(t, m.KillProcesses(syscall.SIGTERM), "with no children")
}

// A child that moved itself into its parent's process group, leaving its
// own group empty, is still reached: through its pidfd.
func TestSignalsReachAChildThatLeftItsGroup(t *testing.T) {
	for _, how := range []string{"KillProcesses", "Signal", "Teardown"} {
		t.Run(how, func(t *testing.T) {
			leakcheck.Check(t)
			m := procman.New()
			require.NoError(t, m.Setup())
			p, c := start(t, m, procman.Spec{Invocation: work("leave-group", "", true)})
			msg := waitHeard(t, m, c, wire.KindProgress)
			require.Equal(t, strconv.Itoa(p.Pid()), string(msg.payload))
			pid := p.Pid()
			t.Cleanup(func() {
				// When the test failed, the child, out of the manager's
				// reach, is killed by hand before Teardown waits for it.
				if !isGone(pid, 0) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				require.NoError(t, m.Teardown())
			})
			switch how {
			case "KillProcesses":
				require.NoError(t, m.KillProcesses(syscall.SIGKILL))
			case "Signal":
				require.NoError(t, p.Signal(syscall.SIGKILL))
			case "Teardown":
				torndown := make(chan error, 1)
				go func() { torndown <- m.Teardown() }()
				select {
				case err := <-torndown:
					require.NoError(t, err)
				case <-time.After(10 * time.Second):
					_ = syscall.Kill(pid, syscall.SIGKILL)
					require.NoError(t, <-torndown)
					t.Fatal("Teardown had not returned 10s later; want the child killed and reaped")
				}
				require.NotNil(t, c.exit, "Teardown did not report the child's exit")
				require.Equal(t, syscall.SIGKILL, c.exit.Signal, "%v", c.exit)
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			m.SetDeadline(deadline)
			for c.exit == nil {
				require.NoError(t, m.Step())
				if c.exit == nil && !time.Now().Before(deadline) {
					t.Fatalf("the child still ran 10s after %s with SIGKILL", how)
				}
			}
			require.Equal(t, syscall.SIGKILL, c.exit.Signal, "%v", c.exit)
		})
	}
}

// A signal that reaches no child is not reported as sent: Signal returns
// ErrProcessDone for a child that has exited, reaped or not.
func TestSignalToAnExitedChild(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{Invocation: work("exit", "0", true)})
	// Exited: a zombie whose last thread is gone (a thread group is
	// reported exited only then).
	waitExited(t, p.Pid())
	require.ErrorIs(t, p.Signal(syscall.SIGTERM), procman.ErrProcessDone, "a child that exited and is not reaped yet")
	waitExit(t, m, c)
	require.ErrorIs(t, p.Signal(syscall.SIGTERM), procman.ErrProcessDone, "a reaped child")
}

func TestWhatAChildLeavesInItsGroupIsKilledWhenItExits(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	_, c, gpid, gstart := grandchildOf(t, m, "exit")
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	waitGone(t, 10*time.Second, map[int]uint64{gpid: gstart})
}

func TestTeardownLeavesNoChildZombieFDOrGoroutine(t *testing.T) {
	leakcheck.Check(t)
	defer goleak.VerifyNone(t)
	m := procman.New()
	require.NoError(t, m.Setup())
	_, _, gpid, gstart := grandchildOf(t, m, "block")
	var cs []*child
	for _, spec := range []procman.Spec{
		{Invocation: work("block", "", true)},
		{Invocation: work("block", "ignore-term", true)},
		{},                                       // idle, waiting for work
		{Invocation: work("exit", "3", true)},    // exits on its own
		{Invocation: work("hangup", "", true)},   // closed its pipe, runs on
		{Invocation: work("echo", "bye", false)}, // answered, waits for more
		{Env: []string{envSleepEarly + "=1"}, Invocation: work("echo", string(randomBytes(1<<20)), true)},
	} {
		_, c := start(t, m, spec)
		cs = append(cs, c)
	}
	require.NoError(t, m.Teardown())
	for i, c := range cs {
		require.NotNil(t, c.exit, "child %d was not reported", i)
		require.Equal(t, 1, c.exitCount, "child %d", i)
	}
	require.Zero(t, m.ProcessCount())
	waitGone(t, 10*time.Second, map[int]uint64{gpid: gstart})
	// leakcheck (children, zombies, fds) and goleak run as the test ends.
}

// TestChildrenDieWithTheirParent kills a parent process (this test binary,
// re-executed as a parent by runParent) with SIGKILL and sees its children
// go: two busy ones (one ignoring SIGTERM) and an idle one.
func TestChildrenDieWithTheirParent(t *testing.T) {
	for _, mode := range []string{"lifeline"} {
		t.Run(mode, func(t *testing.T) {
			leakcheck.Check(t)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envParent+"="+mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

			line, err := bufio.NewReader(out).ReadString('\n')
			require.NoError(t, err, "the parent's first line")
			f := strings.Fields(line)
			require.Equal(t, "pids", f[0], "line %q", line)
			pids := map[int]uint64{}
			for _, s := range f[1:] {
				pid, err := strconv.Atoi(s)
				require.NoError(t, err)
				s, err := testio.ReadStat(pid)
				require.NoError(t, err, "child %d of the parent is not running", pid)
				pids[pid] = s.Start
			}
			require.Len(t, pids, 3)
			t.Cleanup(func() { // only if the test failed: these children are not ours to reap
				for pid, st := range pids {
					if !isGone(pid, st) {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})

			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			start := time.Now()
			waitGone(t, 2*time.Second, pids)
			t.Logf("children gone %v after their parent was reaped", time.Since(start).Round(time.Millisecond))
		})
	}
}
