package procman_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// waitExited waits until the child pid has exited, and leaves it to be
// reaped: the kernel tells (waitid with WNOWAIT) once its whole thread
// group has exited, and /proc shows it a zombie from then on. It fails the
// test when the child still runs after safety.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var info unix.Siginfo
		var err error = unix.EINTR
		for err == unix.EINTR {
			err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err, "waitid(%d, WEXITED|WNOWAIT)", pid)
	case <-time.After(safety):
		t.Fatalf("child %d still ran %v later; want it exited", pid, safety)
	}
}
