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
	taken := settleWith(m.after, func(waiting func() bool) {
		runs++
		require.True(t, waiting())
	})
	m.fire()
	require.Equal(t, 1, runs)
	taken()
	require.True(t, m.stopped)
}

// Work that comes while the settle runs (during its collection, say)
// is seen by it: what it has left to do, the warm-up trip, it skips.
func TestSettleSeesWorkThatCameWhileItRan(t *testing.T) {
	var m manualTimer
	var taken func()
	var before, after bool
	taken = settleWith(m.after, func(waiting func() bool) {
		before = waiting()
		taken() // the first invocation comes
		after = waiting()
	})
	m.fire()
	require.True(t, before)
	require.False(t, after)
}

// A timer that fires once the first invocation came (its Stop was too
// late) runs nothing: the collection would slow the first task.
func TestSettleDoesNotRunOnceWorkCame(t *testing.T) {
	var m manualTimer
	runs := 0
	taken := settleWith(m.after, func(func() bool) { runs++ })
	taken()
	require.True(t, m.stopped, "the timer is stopped")
	m.fire()
	require.Zero(t, runs)
}
