//go:build linux

package procman

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// handler is a Handler that keeps the answers it heard, and the exit.
type handler struct {
	answers [][]byte
	exit    *Exit
}

func (h *handler) Reply(_ *Process, kind Kind, payload []byte) {
	if kind == testAnswer {
		h.answers = append(h.answers, payload)
	}
}

func (h *handler) Note(*Process, Kind, []byte) {}

func (h *handler) Exited(_ *Process, e *Exit) { h.exit = e }

// wait steps m until h's child has exited, for 30 s at most.
func (h *handler) wait(t *testing.T, m *Manager) {
	t.Helper()
	m.SetDeadline(time.Now().Add(30 * time.Second))
	defer m.SetDeadline(time.Time{})
	for h.exit == nil {
		require.NoError(t, m.Step())
		require.False(t, time.Now().After(m.deadline), "the child has not exited in 30 s")
	}
}

// The read buffer of a child that finished serves the next child: a child
// per task costs no new 64 KiB buffer, zeroed on the way to the caller.
func TestAFinishedChildsBufferServesTheNext(t *testing.T) {
	leakcheck.Check(t)
	m := New()
	require.NoError(t, m.Setup())
	defer m.Teardown()
	run := func() *Process {
		h := &handler{}
		p, err := m.CreateProcess(Spec{Invocation: EncodeInvocation("echo", []byte("hi"), true)}, h)
		require.NoError(t, err)
		h.wait(t, m)
		require.Equal(t, [][]byte{[]byte("hi")}, h.answers)
		return p
	}
	run()
	require.Len(t, m.scratch, 1, "the finished child's buffer is kept")
	kept := m.scratch[0]

	h := &handler{}
	p, err := m.CreateProcess(Spec{}, h)
	require.NoError(t, err)
	require.Len(t, m.scratch, 1, "a child that has sent nothing holds no buffer")
	p.CloseInput()
	h.wait(t, m)
	require.Len(t, m.scratch, 1)
	run()
	require.Len(t, m.scratch, 1, "the next child's read took the kept buffer, and gave it back")
	require.Same(t, &kept[0], &m.scratch[0][0])

	for range maxScratch + 2 {
		run()
	}
	require.Len(t, m.scratch, 1, "one child at a time: one buffer goes round")
	for i := range maxScratch + 2 {
		m.keepScratch(make([]byte, 1<<16))
		require.LessOrEqual(t, len(m.scratch), maxScratch, "after %d more", i+1)
	}
}
