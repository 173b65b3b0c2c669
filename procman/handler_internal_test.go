//go:build linux

package procman

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
