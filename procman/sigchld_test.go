package procman_test

import (
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/procman"
)

// A program may take SIGCHLD from the manager: signal.Reset undoes every
// signal.Notify, the manager's too, where the manager learns of exits by
// SIGCHLD (the portable backend). The exit of a child whose message pipe
// has ended is seen all the same, and soon: not only when the hangup wait
// (an hour here) would have the child killed.
func TestAnExitIsSeenAfterTheProgramResetsSIGCHLD(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t, procman.WithHangupWait(time.Hour))
	signal.Reset(syscall.SIGCHLD)
	_, c := start(t, m, procman.Spec{Invocation: work("echo", "x", true)})
	// A Wakeup ends the wait at the test's deadline: a deadline of the
	// manager's own (SetDeadline) would make it look at its children.
	var late atomic.Bool
	timer := time.AfterFunc(5*time.Second, func() { late.Store(true); _ = m.Wakeup() })
	defer timer.Stop()
	for c.exit == nil && !late.Load() {
		require.NoError(t, m.Step())
	}
	require.NotNil(t, c.exit, "the exit of a child that answered was not reported within 5s with SIGCHLD reset; want it seen once the child's pipe ended")
	require.True(t, c.exit.Success(), "%v; want a clean exit, not a hung-up child killed", c.exit)
	require.Equal(t, [][]byte{[]byte("x")}, c.answers())
}
