package leakcheck_test

import (
	"fmt"
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
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}

func TestNothingLeakedIsClean(t *testing.T) {
	s := leakcheck.Take()
	require.NoError(t, s.Leaks(0))
}

func TestFDOpenedAfterSnapshotIsALeakUntilClosed(t *testing.T) {
	s := leakcheck.Take()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	err = s.Leaks(20 * time.Millisecond)
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("fd %d -> pipe:", r.Fd()))
	require.Contains(t, err.Error(), fmt.Sprintf("fd %d -> pipe:", w.Fd()))
	r.Close()
	w.Close()
	require.NoError(t, s.Leaks(time.Second))
}

func TestFDClosedLaterIsWaitedFor(t *testing.T) {
	s := leakcheck.Take()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		time.Sleep(50 * time.Millisecond)
		f.Close()
	}()
	require.NoError(t, s.Leaks(10*time.Second), "Leaks must poll until the fd is closed")
	<-closed
}

func TestChildAliveThenZombieThenReaped(t *testing.T) {
	s := leakcheck.Take()
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	err := s.Leaks(20 * time.Millisecond)
	require.Error(t, err)
	require.Contains(t, err.Error(), "child process "+strconv.Itoa(pid)+" (sleep): alive")

	// Killed and not waited for, it is a zombie: still a leak.
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		err := s.Leaks(0)
		return err != nil && strings.Contains(err.Error(), "child process "+strconv.Itoa(pid)+" (sleep): a zombie")
	}, 10*time.Second, 5*time.Millisecond)

	_ = cmd.Wait()
	require.NoError(t, s.Leaks(time.Second))
}

func TestChildrenAndFDsFromBeforeTheSnapshotAreNotTheTests(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()

	s := leakcheck.Take()
	require.NoError(t, s.Leaks(0))
}

// fakeT records what Verify reports instead of failing the test.
type fakeT struct {
	testing.TB
	errs []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Error(args ...any) {
	f.errs = append(f.errs, fmt.Sprint(args...))
}

func TestVerifyFailsTheTestWithTheLeaks(t *testing.T) {
	s := leakcheck.Take()
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	fd := f.Fd()
	ft := &fakeT{TB: t}
	s.Verify(ft) // waits DefaultWait for the fd to go, then reports it
	f.Close()
	require.Len(t, ft.errs, 1)
	require.Contains(t, ft.errs[0], fmt.Sprintf("fd %d -> /dev/null", fd))
}

func TestCheckPassesForACleanTest(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		leakcheck.Check(t)
		cmd := exec.Command("true")
		require.NoError(t, cmd.Run())
		r, w, err := os.Pipe()
		require.NoError(t, err)
		t.Cleanup(func() { r.Close(); w.Close() }) // runs before Check's
	})
}
