package dispatcher_test

// Tasks that try to get away from their child's end: one that leaves its
// child's process group, one that closes every fd, one whose child is
// stopped when its parent dies, and one that starts a daemon. Whatever
// they do, the child ends when it is told to, and what it started goes
// with it. The tasks are in escape_tasks_test.go.

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// killLoggedByHand kills, when the test ends, every process whose pid a
// task wrote to the gate's log: what the library failed to stop must not
// outlive a failed test, nor hold up the Close of its cleanup. Call it
// after start, so that it runs before that Close.
func killLoggedByHand(t *testing.T, g *gate) {
	t.Helper()
	t.Cleanup(func() { killLogged(t, g) })
}

// killLogged kills every process whose pid a task wrote to the gate's
// log and that still runs.
func killLogged(t *testing.T, g *gate) {
	for _, f := range strings.Fields(readOrEmpty(g.dir + "/log")) {
		if pid, err := strconv.Atoi(f); err == nil && testio.Alive(pid) {
			t.Logf("killing process %d by hand", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// A task that moves its child into its parent's process group and
// ignores its context is still stopped: the signals reach the child
// itself, not only a group that it left (which is then empty).
func TestAChildThatLeavesItsGroupIsStopped(t *testing.T) {
	t.Run("its timeout", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(300*time.Millisecond))
		killLoggedByHand(t, g)
		r, _, _ := startedInTime(t, g, func(timeout time.Duration) *result.Result[int] {
			return leaveGroup.Schedule(d, g.arg(), task.WithTimeout(timeout))
		}, 500*time.Millisecond, 2*time.Second, 8*time.Second)
		select {
		case <-r.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the future of a task with a timeout had not resolved 10s after it; want it stopped after the grace period of 300ms")
		}
		_, err := r.Value()
		ce := requireCancel(t, err, leaveGroup.Name(), context.DeadlineExceeded, true)
		require.Equal(t, []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}, ce.Sent, "what reached the child")
		shutdown(t, d, nil)
	})
	t.Run("Close", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(500*time.Millisecond))
		killLoggedByHand(t, g)
		r := leaveGroup.Schedule(d, g.arg())
		g.waitStarted(t, 1)
		closed := make(chan error, 1)
		go func() { closed <- d.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Errorf("Close with a grace period of 500ms had not returned 10s later")
			killLogged(t, g)
			require.NoError(t, <-closed)
			return
		}
		_, err := r.Value()
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death, "err = %v; want a *result.ChildDeath", err)
		require.ErrorIs(t, err, dispatcher.ErrKilled)
		require.Equal(t, syscall.SIGKILL, death.Signal)
	})
}

// A task that closes every fd from 3 up (as a program about to exec
// often does), the control pipe among them, and runs on still dies with
// its parent.
func TestParentDeathAfterTheTaskClosedItsFDs(t *testing.T) {
	testio.NeedsLinuxBackend(t, "parent-death signal (PR_SET_PDEATHSIG), which reaches a child whose task closed its lifeline pipe")
	testParentDeath(t, "close-fds", 1, 1)
}

// A child that is stopped (SIGSTOP, a debugger) when its parent dies is
// sent SIGHUP and SIGCONT by the kernel, as a member of a process group
// that the death orphans. It still takes what its task started with it:
// plain processes and those that ignore SIGHUP.
func TestParentDeathWhileTheChildIsStopped(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			testParentDeathBy(t, "stopped", 1, 6, sig, func(t *testing.T, pids [][]int) {
				require.NoError(t, syscall.Kill(pids[0][0], syscall.SIGSTOP))
				waitStopped(t, pids[0][0])
			})
		})
	}
}

// waitStopped waits until the process pid is stopped.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := testio.ReadStat(pid)
		require.NoError(t, err)
		if s.State == 'T' {
			return
		}
		require.True(t, time.Now().Before(deadline), "process %d was not stopped 10s after SIGSTOP", pid)
		time.Sleep(time.Millisecond)
	}
}

// A daemon that a task started (setsid, then a fork whose parent exits:
// out of its child's group and session) ends with the child: when the
// dispatcher shuts down, and when the parent dies.
func TestADaemonEndsWithItsChild(t *testing.T) {
	testio.NeedsLinuxBackend(t, "subreaper (PR_SET_CHILD_SUBREAPER) and /proc walk, by which a child finds what left its process group")
	t.Run("Shutdown", func(t *testing.T) {
		checkLeaks(t)
		dir := t.TempDir()
		// A reused child lives on after its answer, until Shutdown; a
		// fresh one would end, and take the daemon with it, as soon as
		// it has answered.
		d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
		daemon, err := await(t, startDaemon.Schedule(d, daemonArg{Dir: dir}))
		require.NoError(t, err)
		t.Cleanup(func() {
			if testio.Alive(daemon) {
				_ = syscall.Kill(daemon, syscall.SIGKILL) // only when the test failed
			}
		})
		require.True(t, testio.Alive(daemon), "the daemon %d does not run", daemon)
		shutdown(t, d, nil)
		requireGone(t, daemon, "after Shutdown returned")
	})
	t.Run("the parent's death", func(t *testing.T) {
		testParentDeath(t, "daemon", 1, 2)
	})
	// The task ignores its context: its child is killed with SIGKILL,
	// on which it cannot act, and the parent kills the daemon first.
	t.Run("Close", func(t *testing.T) {
		checkLeaks(t)
		dir := t.TempDir()
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(200*time.Millisecond))
		r := startDaemon.Schedule(d, daemonArg{Dir: dir, Block: true})
		daemon := reportedDaemon(t, dir)
		require.NoError(t, d.Close())
		_, err := r.Value()
		require.ErrorIs(t, err, dispatcher.ErrKilled)
		requireGone(t, daemon, "after Close returned")
	})
	t.Run("its timeout", func(t *testing.T) {
		checkLeaks(t)
		dir := t.TempDir()
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(200*time.Millisecond))
		// Three seconds: the daemon must start before the timeout passes,
		// and a child can take a second to start on a loaded machine.
		r := startDaemon.Schedule(d, daemonArg{Dir: dir, Block: true}, task.WithTimeout(3*time.Second))
		daemon := reportedDaemon(t, dir)
		_, err := await(t, r)
		requireCancel(t, err, startDaemon.Name(), context.DeadlineExceeded, true)
		requireGone(t, daemon, "after the future resolved")
		shutdown(t, d, nil)
	})
}

// reportedDaemon waits for the pid file that startDaemon writes in dir
// and returns the daemon's pid, which it kills when the test ends, should
// it still run.
func reportedDaemon(t *testing.T, dir string) int {
	t.Helper()
	var pids []string
	require.Eventually(t, func() bool {
		matches, _ := filepath.Glob(filepath.Join(dir, "pid.*"))
		if len(matches) == 0 {
			return false
		}
		pids = strings.Fields(readOrEmpty(matches[0]))
		return true
	}, 20*time.Second, 5*time.Millisecond, "the task did not report its daemon")
	require.Len(t, pids, 2, "the child's pid and the daemon's")
	daemon, err := strconv.Atoi(pids[1])
	require.NoError(t, err)
	t.Cleanup(func() {
		if testio.Alive(daemon) {
			_ = syscall.Kill(daemon, syscall.SIGKILL) // only when the test failed
		}
	})
	return daemon
}

// requireGone fails unless process pid is gone, or a zombie, within 2
// seconds: the kill was sent, and its delivery is the kernel's.
func requireGone(t *testing.T, pid int, when string) {
	t.Helper()
	exited, err := testio.WaitExited(pid, 0, 2*time.Second)
	require.NoError(t, err)
	require.True(t, exited, "process %d still runs 2s %s; want it killed", pid, when)
}

// A child catches SIGHUP, for the case of its parent's death while it is
// stopped; while its parent lives, SIGHUP still kills it, as it kills a
// Go program that does not catch it.
func TestSIGHUPStillKillsAChildWhoseParentLives(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	_, err := await(t, killSelf.Schedule(d, syscall.SIGHUP))
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death, "err = %v; want a *result.ChildDeath", err)
	require.Equal(t, syscall.SIGHUP, death.Signal, "%v", death)
	shutdown(t, d, nil)
}
