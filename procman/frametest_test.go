package procman_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/frametest"
	"github.com/procrastinate-go/procrastinate/procman"
)

// internal/frametest, which tests outside procman use to forge and read
// frames, writes and reads what the manager does.
func TestFrametestAgreesWithTheManagersFraming(t *testing.T) {
	for _, c := range []byte{frametest.Invocation, frametest.Reply, frametest.Note, frametest.File} {
		require.Equal(t, procman.AppendHeader(nil, procman.FrameClassForTest(c), 7), frametest.Header(nil, c, 7), "class %d", c)
	}
	for _, n := range []uint64{1, 300, 1 << 40} {
		want := procman.AppendNumberedFrame(nil, procman.FrameReply, n, 9, []byte("payload"))
		got := frametest.Numbered(nil, frametest.Reply, n, 9, []byte("payload"))
		require.Equal(t, want, got, "reply %d", n)
		c, p, err := frametest.Read(bytes.NewReader(got), 1<<20)
		require.NoError(t, err)
		require.Equal(t, frametest.Reply, c)
		gn, kind, rest, ok := frametest.CutNumber(p)
		require.True(t, ok)
		require.Equal(t, n, gn)
		require.Equal(t, procman.Kind(9), kind)
		require.Equal(t, []byte("payload"), rest)
	}
	for _, size := range []int{0, 1 << 20, 1 << 40} {
		want := procman.AppendFileHead(nil, procman.FrameNote, 300, 9, size)
		got := frametest.FileHead(nil, frametest.Note, 300, 9, size)
		require.Equal(t, want, got, "file frame of %d bytes", size)
		_, p, err := frametest.Read(bytes.NewReader(append(got, frametest.FileSent)), 1<<20)
		require.NoError(t, err)
		c, gsize, numbered, mark, ok := frametest.CutFile(p)
		require.True(t, ok)
		require.Equal(t, frametest.Note, c)
		require.Equal(t, uint64(size), gsize)
		require.Equal(t, frametest.FileSent, mark)
		n, kind, _, ok := frametest.CutNumber(numbered)
		require.True(t, ok)
		require.Equal(t, uint64(300), n)
		require.Equal(t, procman.Kind(9), kind)
	}
	require.Equal(t, procman.FileSent, frametest.FileSent)
	require.Equal(t, procman.FileNone, frametest.FileNone)
	_, _, err := frametest.Read(bytes.NewReader(frametest.Header(nil, frametest.MaxClass+1, 0)), 10)
	require.ErrorIs(t, err, frametest.ErrNotAFrame)
	_, _, err = procman.ReadFrame(bytes.NewReader(frametest.Header(nil, frametest.MaxClass+1, 0)), 10)
	require.ErrorIs(t, err, procman.ErrNotAFrame)
}
