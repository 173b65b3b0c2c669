package procman_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

func TestStateStringNamesEachState(t *testing.T) {
	for _, tc := range []struct {
		s    procman.State
		want string
	}{
		{procman.StateNew, "new"},
		{procman.StateRunning, "running"},
		{procman.StateStopped, "stopped"},
		{procman.StateRemovable, "removable"},
		{procman.State(9), "State(9)"},
	} {
		require.Equal(t, tc.want, tc.s.String())
	}
}

// stepInBackground runs one Step on another goroutine and reports its
// error, with whether woke was set when it returned.
func stepInBackground(m *procman.Manager, woke *atomic.Bool) <-chan error {
	done := make(chan error, 1)
	go func() {
		err := m.Step()
		if err == nil && !woke.Load() {
			err = errors.New("Step returned before Wakeup was called")
		}
		done <- err
	}()
	return done
}

// assertAsleep gives a Step that would wrongly return time to do so.
func assertAsleep(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Step returned (%v) with nothing to do; want it asleep until Wakeup", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestStepSleepsUntilWakeupFromAnotherGoroutine(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	var woke atomic.Bool
	done := stepInBackground(m, &woke)
	assertAsleep(t, done)
	woke.Store(true)
	go func() { _ = m.Wakeup() }()
	require.NoError(t, <-done)
}

func TestWakeupBeforeStepIsKept(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	done := make(chan error)
	go func() { done <- m.Wakeup() }()
	require.NoError(t, <-done)
	require.NoError(t, m.Wakeup()) // a second pending wakeup is one wakeup

	deadline := time.Now().Add(safety)
	m.SetDeadline(deadline)
	require.NoError(t, m.Step())
	require.True(t, time.Now().Before(deadline), "Step slept to its deadline: the Wakeup was lost")

	// The wakeup was used up: the next Step sleeps until its deadline.
	deadline = time.Now().Add(20 * time.Millisecond)
	m.SetDeadline(deadline)
	require.NoError(t, m.Step())
	require.False(t, time.Now().Before(deadline), "Step returned before its deadline with nothing to do")
}

func TestSetDeadlineMakesStepReturn(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)

	deadline := time.Now().Add(30 * time.Millisecond)
	m.SetDeadline(deadline)
	require.NoError(t, m.Step())
	require.False(t, time.Now().Before(deadline), "Step returned before its deadline with nothing to do")

	m.SetDeadline(time.Now().Add(-time.Second)) // passed: Step does not sleep
	require.NoError(t, m.Step())

	// The zero time removes the deadline: Step sleeps until Wakeup.
	m.SetDeadline(time.Time{})
	var woke atomic.Bool
	done := stepInBackground(m, &woke)
	assertAsleep(t, done)
	woke.Store(true)
	require.NoError(t, m.Wakeup())
	require.NoError(t, <-done)
}

func TestWakeupBeforeSetupDoesNotSpoilLaterWakeups(t *testing.T) {
	leakcheck.Check(t)
	m := procman.New()
	require.ErrorIs(t, m.Wakeup(), procman.ErrNotSetUp)
	require.ErrorIs(t, m.Wakeup(), procman.ErrNotSetUp)
	require.NoError(t, m.Setup())
	defer m.Teardown()
	stepWokenLater(t, m, m.Step)
}

func TestProcessCountCountsAChildUntilItsExitedRan(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	const n = 3
	var cs []*child
	for i := range n {
		c := &child{}
		c.onMessage = func(p *procman.Process, k procman.Kind, payload []byte) {
			require.Contains(t, m.Processes(), p, "a child that sends is held by the manager")
		}
		c.onExit = func(p *procman.Process, e *procman.Exit) {
			require.NotContains(t, m.Processes(), p, "Exited runs once the child is removed")
		}
		_, err := m.CreateProcess(procman.Spec{Invocation: work("echo", fmt.Sprint(i), true)}, c)
		require.NoError(t, err)
		cs = append(cs, c)
		require.Equal(t, i+1, m.ProcessCount())
	}

	// Each child answers and exits at once, but it counts until its
	// handler is told: a zombie that no Step has reaped yet still counts.
	for _, p := range m.Processes() {
		waitExited(t, p.Pid())
	}
	require.Equal(t, n, m.ProcessCount(), "children that exited but were not reported yet")

	exited := func() int {
		k := 0
		for _, c := range cs {
			if c.exit != nil {
				k++
			}
		}
		return k
	}
	stepUntil(t, m, func() bool {
		require.Equal(t, n-exited(), m.ProcessCount())
		return exited() == n
	})
	require.Zero(t, m.ProcessCount())
	require.Empty(t, m.Processes())
	for i, c := range cs {
		require.True(t, c.exit.Success(), "child %d: %v", i, c.exit)
		require.Equal(t, [][]byte{[]byte(fmt.Sprint(i))}, c.answers(), "child %d", i)
	}
}

func TestWaitForAllChildrenReturnsWhenEveryExitedRan(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	var cs []*child
	for i := range 5 {
		_, c := start(t, m, procman.Spec{Invocation: work("echo", fmt.Sprint(i), true)})
		cs = append(cs, c)
	}
	require.NoError(t, m.WaitForAllChildren())
	require.Zero(t, m.ProcessCount())
	for i, c := range cs {
		require.NotNil(t, c.exit, "child %d", i)
		require.True(t, c.exit.Success(), "child %d: %v", i, c.exit)
		require.Equal(t, [][]byte{[]byte(fmt.Sprint(i))}, c.answers())
	}
	require.NoError(t, m.WaitForAllChildren(), "with no children")
}

func TestAChildMovesFromRunningToStoppedToRemovable(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{Name: "states", Invocation: work("echo", "hi", true)})
	require.Equal(t, procman.StateRunning, p.State(), "after CreateProcess")
	require.Nil(t, p.Exit(), "Exit() while running")
	require.Equal(t, "states", p.Name())
	e := waitExit(t, m, c)
	require.Len(t, c.msgs, 1)
	// A frame read before the exit was seen comes in state running; one
	// read from the pipe after it, in state stopped.
	require.Contains(t, []procman.State{procman.StateRunning, procman.StateStopped}, c.msgs[0].state)
	require.Equal(t, procman.StateRemovable, c.exitState, "state inside Exited")
	require.Equal(t, procman.StateRemovable, p.State(), "state after Exited")
	require.Same(t, e, p.Exit())
}

func TestCallsOutOfOrderGetClearErrors(t *testing.T) {
	leakcheck.Check(t)
	h := &child{}
	calls := []struct {
		name string
		call func(m *procman.Manager) error
	}{
		{"CreateProcess", func(m *procman.Manager) error {
			p, err := m.CreateProcess(procman.Spec{}, h)
			if p != nil {
				return errors.New("CreateProcess returned a process with its error")
			}
			return err
		}},
		{"Step", func(m *procman.Manager) error { return m.Step() }},
		{"KillProcesses", func(m *procman.Manager) error { return m.KillProcesses(syscall.SIGTERM) }},
		{"Wakeup", func(m *procman.Manager) error { return m.Wakeup() }},
	}
	for _, c := range calls {
		t.Run(c.name+"BeforeSetup", func(t *testing.T) {
			require.ErrorIs(t, c.call(procman.New()), procman.ErrNotSetUp)
		})
		t.Run(c.name+"AfterTeardown", func(t *testing.T) {
			m := procman.New()
			require.NoError(t, m.Setup())
			require.NoError(t, m.Teardown())
			require.ErrorIs(t, c.call(m), procman.ErrTornDown)
		})
	}
	t.Run("SetupTwice", func(t *testing.T) {
		m := procman.New()
		require.NoError(t, m.Setup())
		defer m.Teardown()
		err := m.Setup()
		require.Error(t, err)
		require.NotErrorIs(t, err, procman.ErrTornDown)
	})
	t.Run("SetupAfterTeardown", func(t *testing.T) {
		m := procman.New()
		require.NoError(t, m.Setup())
		require.NoError(t, m.Teardown())
		require.ErrorIs(t, m.Setup(), procman.ErrTornDown)
	})
	t.Run("TeardownTwice", func(t *testing.T) {
		m := procman.New()
		require.NoError(t, m.Setup())
		require.NoError(t, m.Teardown())
		require.NoError(t, m.Teardown())
	})
	t.Run("TeardownWithoutSetup", func(t *testing.T) {
		require.NoError(t, procman.New().Teardown())
	})
	t.Run("NilHandler", func(t *testing.T) {
		m := newManager(t)
		p, err := m.CreateProcess(procman.Spec{}, nil)
		require.Error(t, err)
		require.Nil(t, p)
		require.Zero(t, m.ProcessCount())
	})
}

func TestExecutableThatCannotStartIsAStartError(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"Missing", "/nonexistent/procman-test", fs.ErrNotExist},
		{"NotExecutable", notExec, fs.ErrPermission},
		{"Directory", dir, fs.ErrPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t, procman.WithExecutable(tc.path))
			c := &child{}
			p, err := m.CreateProcess(procman.Spec{Invocation: work("echo", "x", true)}, c)
			require.Nil(t, p)
			var se *procman.StartError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.path, se.Path)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.path)
			require.Zero(t, m.ProcessCount())

			// The manager is still good for children that can start.
			m.SetDeadline(time.Now())
			require.NoError(t, m.Step())
			require.Nil(t, c.exit, "the handler of a child that never started is not called")
		})
	}
}

func TestConcurrentUsePanicsWithTheDocumentedMessage(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	var woke atomic.Bool
	done := stepInBackground(m, &woke)
	assertAsleep(t, done) // Step is inside the manager now

	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_, _ = m.CreateProcess(procman.Spec{}, &child{})
	}()
	require.NotNil(t, recovered, "CreateProcess while Step runs on another goroutine did not panic")
	msg := fmt.Sprint(recovered)
	require.Contains(t, msg, "procman: Manager used from two goroutines at once")
	require.Zero(t, m.ProcessCount(), "the refused call started nothing")

	woke.Store(true)
	require.NoError(t, m.Wakeup())
	require.NoError(t, <-done)
	// Teardown (newManager's cleanup) runs cleanly after this.
}

// A handler that starts children, as a strategy that keeps N workers does,
// must not start one while the manager is being torn down: nothing would
// reap it.
func TestHandlerCannotStartChildrenDuringTeardown(t *testing.T) {
	leakcheck.Check(t)
	m := procman.New()
	require.NoError(t, m.Setup())
	var errs []error
	c := &child{}
	c.onExit = func(p *procman.Process, e *procman.Exit) {
		p2, err := m.CreateProcess(procman.Spec{Invocation: work("block", "", true)}, &child{})
		if p2 != nil {
			err = fmt.Errorf("started child %d during Teardown", p2.Pid())
		}
		errs = append(errs, err)
		errs = append(errs, p.Send(work("echo", "", true)))
	}
	_, err := m.CreateProcess(procman.Spec{Invocation: work("block", "", true)}, c)
	require.NoError(t, err)
	waitHeard(t, m, c, wire.KindProgress)
	require.NoError(t, m.Teardown())
	require.NotNil(t, c.exit)
	require.Equal(t, syscall.SIGKILL, c.exit.Signal)
	require.Len(t, errs, 2)
	require.ErrorIs(t, errs[0], procman.ErrTornDown)
	require.ErrorIs(t, errs[1], procman.ErrInputClosed)
	require.Zero(t, m.ProcessCount())
	require.True(t, slices.Equal(m.Processes(), nil) || len(m.Processes()) == 0)
}
