//go:build linux && !procrastinate_portable

package procman

import (
	"testing"
	"time"

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

// An idle manager's epoll set leaves the runtime's poller before the
// manager writes work into a child's pipe, not when it next waits: a
// child woken on the manager's CPU runs before that, and its answer must
// not wake the poller's thread too.
func TestWorkLeavesThePollerBeforeItIsWritten(t *testing.T) {
	leakcheck.Check(t)
	m := New()
	require.NoError(t, m.Setup())
	defer m.Teardown()
	require.NotNil(t, m.poll, "this kernel's runtime poller takes an epoll fd")
	h := &handler{}
	p, err := m.CreateProcess(Spec{}, h) // a spare: no invocation yet
	require.NoError(t, err)

	m.setIdle(true)
	m.Wakeup()
	require.NoError(t, m.Step()) // parks, and returns at once: woken
	require.True(t, m.linked, "an idle manager parks in the poller")

	require.NoError(t, p.Send(EncodeInvocation("echo", []byte("hi"), true)))
	require.True(t, m.linked, "Send only queues")
	m.flushNow()
	require.False(t, m.linked, "the write left the poller first")

	m.setIdle(false)
	h.wait(t, m)
	require.Equal(t, [][]byte{[]byte("hi")}, h.answers)
	require.True(t, h.exit.Success(), "%v", h.exit)

	// An owner that stays idle while its Step writes keeps the set in
	// the poller, where that Step parks.
	h = &handler{}
	p, err = m.CreateProcess(Spec{}, h)
	require.NoError(t, err)
	m.setIdle(true)
	m.Wakeup()
	require.NoError(t, m.Step())
	require.True(t, m.linked)
	require.NoError(t, p.Send(EncodeInvocation("echo", []byte("ho"), true)))
	m.SetDeadline(time.Now().Add(30 * time.Second))
	for len(h.answers) == 0 {
		require.NoError(t, m.Step())
		require.True(t, m.linked, "an idle Step's write left the poller")
		require.False(t, time.Now().After(m.deadline), "no answer in 30 s")
	}
	m.setIdle(false)
	h.wait(t, m)
	require.Equal(t, [][]byte{[]byte("ho")}, h.answers)
}
