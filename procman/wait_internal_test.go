//go:build linux && !procrastinate_portable

package procman

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// The manager's epoll set is in the set that the runtime's poller
// watches only while an idle Step parks: a busy manager's events (here
// its eventfd made readable) must not make that set readable, which
// would wake the poller's thread for nothing.
func TestOnlyAnIdleManagerIsInThePoller(t *testing.T) {
	leakcheck.Check(t)
	m := New()
	require.NoError(t, m.Setup())
	defer m.Teardown()
	require.NotNil(t, m.poll, "this kernel's runtime poller takes an epoll fd")
	outerReady := func() int {
		var evs [4]unix.EpollEvent
		n, err := unix.EpollWait(m.outer, evs[:], 0)
		require.NoError(t, err)
		return n
	}
	event := func() { // what a Wakeup does when the owner does not park
		_, err := unix.Write(m.evfd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		require.NoError(t, err)
	}

	m.setIdle(true)
	m.Wakeup()
	require.NoError(t, m.Step()) // parks, and returns at once: woken
	event()
	require.Equal(t, 1, outerReady(), "an idle manager's events reach the poller's set")
	require.NoError(t, m.Step())

	m.setIdle(false)
	m.Wakeup()
	require.NoError(t, m.Step())
	event()
	require.Zero(t, outerReady(), "a busy manager's events stay out of the poller's set")
	require.NoError(t, m.Step())
}
