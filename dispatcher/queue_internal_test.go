package dispatcher

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// joinQueue keeps the kept jobs and the rest of the queue in order, and
// leaves the rest where it is: a pass of assign that stops after a few
// jobs must not copy a long queue, or a backlog of n jobs handed to
// children a few at a time costs n²/few copies.
func TestJoinQueueLeavesTheRestInPlace(t *testing.T) {
	q := make([]*job, 10)
	for i := range q {
		q[i] = &job{n: uint64(i)}
	}
	rest := &q[6]
	// A pass over q[:6] that kept jobs 1 and 4 at the front.
	q[0], q[1] = q[1], q[4]
	got := joinQueue(q, 2, 6)
	var ns []uint64
	for _, j := range got {
		ns = append(ns, j.n)
	}
	require.Equal(t, []uint64{1, 4, 6, 7, 8, 9}, ns, "the queue after the pass")
	require.Same(t, rest, &got[2], "the rest of the queue was moved; want it left in place")
	for i, j := range q[:4] {
		require.Nil(t, j, "slot %d before the queue's new front still holds a job", i)
	}
}
