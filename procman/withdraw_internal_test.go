package procman

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// A withdrawal is a stop frame that names one invocation; a plain stop
// and a goodbye name none.
func TestWithdrawalFrameNamesOneInvocation(t *testing.T) {
	for _, n := range []uint64{1, 127, 128, 1 << 40} {
		k, payload, err := readFrame(bufio.NewReader(bytes.NewReader(appendWithdraw(nil, n))), 0)
		require.NoError(t, err, "reading the withdrawal of %d", n)
		require.Equal(t, frameStop, k, "the withdrawal's class")
		got, ok := withdrawn(payload)
		require.True(t, ok, "withdrawn(%v); want invocation %d", payload, n)
		require.Equal(t, n, got, "the invocation withdrawn")
		require.False(t, isGoodbye(payload), "a withdrawal taken for a goodbye")
	}
	for _, p := range [][]byte{nil, {1}, {2}, {2, 0}, {2, 0x80}, {2, 1, 1}, {3, 1}} {
		_, ok := withdrawn(p)
		require.False(t, ok, "withdrawn(%v); want no invocation", p)
	}
}

// The child records what the parent withdraws, says so on its channel,
// and hands each number out once; a withdrawal does not stop it.
func TestChildRecordsWithdrawals(t *testing.T) {
	c := &Child{stop: make(chan struct{}), withdrawReady: make(chan struct{}, 1)}
	c.withdraw(3)
	c.withdraw(5)
	select {
	case <-c.withdrawReady:
	default:
		t.Fatal("no word on the channel after two withdrawals")
	}
	require.Equal(t, []uint64{3, 5}, c.takeWithdrawn(), "the withdrawals taken")
	require.Empty(t, c.takeWithdrawn(), "the withdrawals taken a second time")
	select {
	case <-c.stop:
		t.Fatal("a withdrawal stopped the child")
	default:
	}
}
