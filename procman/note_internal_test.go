//go:build linux

package procman

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A note goes out for the invocation in flight only: one for an
// invocation already answered is dropped (a goroutine that a task left
// behind cannot speak for the next task), and one for an invocation not
// yet taken, or behind another in flight, is an error.
func TestANoteIsBoundToItsInvocation(t *testing.T) {
	p := newChildPipes(t)
	p.send(t, invocation("one"), invocation("two"))
	ctx := context.Background()
	seq1, _, err := p.c.Next(ctx)
	require.NoError(t, err)
	seq2, _, err := p.c.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2}, []uint64{seq1, seq2}, "Next numbers invocations from 1")
	const progress Kind = 4
	require.ErrorContains(t, p.c.Note(3, progress, nil), "which Next has not returned")
	require.ErrorContains(t, p.c.Note(0, progress, nil), "which Next has not returned")
	require.ErrorContains(t, p.c.Note(seq2, progress, nil), "while invocation 1 is in flight")
	require.NoError(t, p.c.Note(seq1, progress, []byte("a")))
	require.NoError(t, p.c.Reply(testAnswer, []byte("r1")))
	require.NoError(t, p.c.Note(seq1, progress, []byte("late")), "a late note is dropped, not an error")
	require.NoError(t, p.c.Note(seq2, progress, []byte("b")))
	require.NoError(t, p.c.Reply(testAnswer, []byte("r2")))
	require.Error(t, p.c.Reply(testAnswer, nil), "a reply with nothing in flight")

	type out struct {
		class frameClass
		n     uint64
		kind  Kind
		data  string
	}
	var got []out
	for range 4 {
		c, payload, err := readFrame(p.msg, 0)
		require.NoError(t, err)
		n, kind, rest, err := cutNumber(payload)
		require.NoError(t, err)
		got = append(got, out{c, n, kind, string(rest)})
	}
	require.Equal(t, []out{
		{frameNote, 1, progress, "a"}, {frameReply, 1, testAnswer, "r1"},
		{frameNote, 2, progress, "b"}, {frameReply, 2, testAnswer, "r2"},
	}, got, "what the child wrote; the late note is not in it")
}
