package task

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// An invocation withdrawn before it begins is skipped; one withdrawn
// while it runs is cut, once; one withdrawn after its answer, or twice,
// changes nothing.
func TestWithdrawalsSkipOrCut(t *testing.T) {
	w := &withdrawals{skip: make(map[uint64]bool)}
	require.False(t, w.begin(1, nil), "invocation 1, not withdrawn: skipped")
	running, later, cut := w.absorb([]uint64{3, 3})
	require.Equal(t, uint64(1), running, "the invocation that runs")
	require.Equal(t, []uint64{3}, later, "the withdrawn invocations that will not begin, each once")
	require.False(t, cut, "the running invocation cut by a withdrawal of a later one")
	require.False(t, w.end(), "invocation 1 cut")
	require.False(t, w.begin(2, nil), "invocation 2, not withdrawn: skipped")
	require.False(t, w.end(), "invocation 2 cut")
	_, _, cut = w.absorb([]uint64{2})
	require.False(t, cut, "an answered invocation cut")
	require.True(t, w.begin(3, nil), "invocation 3, withdrawn before it began: not skipped")
	_, later, _ = w.absorb([]uint64{4})
	require.Nil(t, later, "withdrawals said while nothing runs")
	require.True(t, w.begin(4, nil), "invocation 4, withdrawn while none ran: not skipped")
	require.False(t, w.begin(5, []uint64{6}), "invocation 5 skipped")
	_, _, cut = w.absorb([]uint64{5})
	require.True(t, cut, "invocation 5, withdrawn while it ran: not cut")
	_, _, cut = w.absorb([]uint64{5})
	require.False(t, cut, "invocation 5 cut a second time")
	require.True(t, w.end(), "the answer of a cut invocation: not marked cut")
}
