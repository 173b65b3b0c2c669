package task

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// manualTimer is an after for settleWith whose firing the test controls.
type manualTimer struct {
	fire    func()
	stopped bool
}

func (m *manualTimer) after(f func()) func() bool {
	m.fire = f
	return func() bool { m.stopped = true; return true }
}

func TestSettleRunsWhenNoWorkCame(t *testing.T) {
	var m manualTimer
	runs := 0
	taken := settleWith(m.after, func() { runs++ })
	m.fire()
	require.Equal(t, 1, runs)
	taken()
	require.True(t, m.stopped)
}

// A timer that fires once the first invocation came (its Stop was too
// late) runs nothing: the collection would slow the first task.
func TestSettleDoesNotRunOnceWorkCame(t *testing.T) {
	var m manualTimer
	runs := 0
	taken := settleWith(m.after, func() { runs++ })
	taken()
	require.True(t, m.stopped, "the timer is stopped")
	m.fire()
	require.Zero(t, runs)
}
