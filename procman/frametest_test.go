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
	for _, c := range []byte{frametest.Invocation, frametest.Reply, frametest.Note, frametest.File, frametest.FilePart} {
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
		want := procman.AppendFileFrame(nil, procman.FrameNote, 300, 9, size)
		got := frametest.FileFrame(nil, frametest.Note, 300, 9, size)
		require.Equal(t, want, got, "file frame of %d bytes", size)
		require.Equal(t, procman.AppendFilePart(nil, size), frametest.Part(nil, size), "file-part frame to %d", size)
	}
	_, _, err := frametest.Read(bytes.NewReader(frametest.Header(nil, frametest.MaxClass+1, 0)), 10)
	require.ErrorIs(t, err, frametest.ErrNotAFrame)
	_, _, err = procman.ReadFrame(bytes.NewReader(frametest.Header(nil, frametest.MaxClass+1, 0)), 10)
	require.ErrorIs(t, err, procman.ErrNotAFrame)
}
