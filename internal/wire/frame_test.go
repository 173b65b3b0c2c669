package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type frame struct {
	kind    Kind
	payload []byte
}

// pattern returns n bytes that differ from one offset to the next, so that a
// payload copied from the wrong place does not compare equal.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7+i>>8) ^ seed
	}
	return p
}

func encodeFrames(fs []frame) []byte {
	var b []byte
	for _, f := range fs {
		b = AppendFrame(b, f.kind, f.payload)
	}
	return b
}

// feed gives data to d in pieces of at most chunk bytes, each no larger than
// the buffer d hands out, and returns every frame d gives back. It stops at
// the first error.
func feed(d *Decoder, data []byte, chunk int) ([]frame, error) {
	var got []frame
	for len(data) > 0 {
		buf := d.Buffer()
		if len(buf) == 0 {
			return got, errors.New("Buffer() returned an empty slice")
		}
		n := min(chunk, len(data), len(buf))
		copy(buf, data[:n])
		d.Advance(n)
		data = data[n:]
		for {
			k, p, ok, err := d.Next()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			got = append(got, frame{k, p})
		}
	}
	return got, nil
}

func requireFrames(t *testing.T, want, got []frame, msg string) {
	t.Helper()
	require.Len(t, got, len(want), "%s: number of frames", msg)
	for i := range want {
		require.Equal(t, want[i].kind, got[i].kind, "%s: frame %d kind", msg, i)
		require.True(t, bytes.Equal(want[i].payload, got[i].payload),
			"%s: frame %d payload differs (%d bytes, want %d)", msg, i, len(got[i].payload), len(want[i].payload))
	}
}

// The payload sizes around the decoder's scratch buffer: the largest frame
// that fits in it, the smallest that does not, and one several times larger.
var boundarySizes = []int{0, 1, 8, 1000, scratchSize - HeaderSize - 1, scratchSize - HeaderSize, scratchSize - HeaderSize + 1, scratchSize, 200_003}

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range boundarySizes {
		for _, k := range []Kind{KindInvocation, KindAnswer, KindTaskFailed, KindHeartbeat, KindProgress, KindStop, KindRetiring, KindUsage, KindLog} { // KindNoMain has no payload: TestABadKindIsErrBadKind
			t.Run(fmt.Sprintf("%v/%d", k, n), func(t *testing.T) {
				payload := pattern(n, byte(k))
				enc := AppendFrame(nil, k, payload)
				require.Len(t, enc, HeaderSize+n)

				var w bytes.Buffer
				require.NoError(t, WriteFrame(&w, k, payload))
				require.Equal(t, enc, w.Bytes(), "WriteFrame and AppendFrame disagree")

				gk, gp, err := ReadFrame(bytes.NewReader(enc), n)
				require.NoError(t, err)
				require.Equal(t, k, gk)
				require.True(t, bytes.Equal(payload, gp), "ReadFrame payload differs")

				// One byte at a time, as a slow pipe would give it.
				gk, gp, err = ReadFrame(iotest.OneByteReader(bytes.NewReader(enc)), 0)
				require.NoError(t, err)
				require.Equal(t, k, gk)
				require.True(t, bytes.Equal(payload, gp), "ReadFrame (one byte reads) payload differs")

				var d Decoder
				got, err := feed(&d, enc, len(enc))
				require.NoError(t, err)
				requireFrames(t, []frame{{k, payload}}, got, "Decoder")
				require.Zero(t, d.Pending())
			})
		}
	}
}

func TestReadFrameReadsFramesInOrderToACleanEOF(t *testing.T) {
	fs := []frame{{KindAnswer, []byte("a")}, {KindHeartbeat, nil}, {KindProgress, pattern(70_000, 3)}, {KindAnswer, []byte("end")}}
	r := bytes.NewReader(encodeFrames(fs))
	for i, f := range fs {
		k, p, err := ReadFrame(r, 0)
		require.NoError(t, err, "frame %d", i)
		require.Equal(t, f.kind, k)
		require.True(t, bytes.Equal(f.payload, p), "frame %d payload", i)
	}
	_, _, err := ReadFrame(r, 0)
	require.Equal(t, io.EOF, err, "ReadFrame at a clean end")
}

// TestDecoderDecodesAStreamFedInChunksOfAnySize feeds streams to a Decoder in pieces of every size from
// 1 up, and of odd sizes around the scratch buffer.
func TestDecoderDecodesAStreamFedInChunksOfAnySize(t *testing.T) {
	var small []frame
	for i := range 12 {
		small = append(small, frame{Kind(1 + i%int(KindRetiring)), pattern(i*3, byte(i))})
	}
	// Frames of 1000 bytes straddle the end of the scratch buffer again and
	// again, so the decoder must move partial frames to the front.
	var straddling []frame
	for i := range 150 {
		straddling = append(straddling, frame{KindProgress, pattern(1000+i%7, byte(i))})
	}
	var mixed []frame
	mixed = append(mixed, small[:3]...)
	mixed = append(mixed, frame{KindAnswer, pattern(3*scratchSize+17, 9)}) // larger than scratch
	mixed = append(mixed, small[3:6]...)
	mixed = append(mixed, frame{KindAnswer, pattern(scratchSize-HeaderSize, 10)}) // fills scratch exactly
	mixed = append(mixed, frame{KindAnswer, pattern(scratchSize-HeaderSize+1, 11)})
	mixed = append(mixed, small[6:]...)

	odd := []int{63, 64, 65, 127, 4093, 4096, 65521, scratchSize - 1, scratchSize, scratchSize + 1, 131071, 1 << 20}
	cases := []struct {
		name   string
		frames []frame
		sizes  []int
	}{
		{"small", small, nil},
		{"straddling", straddling, odd},
		{"mixed", mixed, odd},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream := encodeFrames(c.frames)
			sizes := c.sizes
			upTo := len(stream)
			if upTo > 64 {
				upTo = 64
			}
			for n := 1; n <= upTo; n++ {
				sizes = append(sizes, n)
			}
			sizes = append(sizes, len(stream))
			for _, n := range sizes {
				var d Decoder
				got, err := feed(&d, stream, n)
				require.NoError(t, err, "chunk %d", n)
				requireFrames(t, c.frames, got, fmt.Sprintf("chunk %d", n))
				require.Zero(t, d.Pending(), "chunk %d: Pending at the end", n)
			}
		})
	}
}

// TestDecoderPendingIsTheUnfinishedFramesLength cuts a stream at every byte (near the large frame, at
// some), and checks that Pending is the length of the frame started and not
// finished.
func TestDecoderPendingIsTheUnfinishedFramesLength(t *testing.T) {
	fs := []frame{
		{KindAnswer, []byte("hello")},
		{KindHeartbeat, nil},
		{KindAnswer, pattern(scratchSize+100, 1)},
		{KindProgress, []byte("tail")},
	}
	stream := encodeFrames(fs)
	var ends []int // where each frame ends in the stream
	off := 0
	for _, f := range fs {
		off += HeaderSize + len(f.payload)
		ends = append(ends, off)
	}
	var cuts []int
	for i := 0; i <= len(stream); i++ {
		if i < ends[1]+2*HeaderSize || i > ends[2]-2*HeaderSize || i%997 == 0 {
			cuts = append(cuts, i)
		}
	}
	for _, cut := range cuts {
		for _, chunk := range []int{cut + 1, 3} {
			var d Decoder
			got, err := feed(&d, stream[:cut], chunk)
			require.NoError(t, err)
			complete := 0
			for complete < len(ends) && ends[complete] <= cut {
				complete++
			}
			require.Len(t, got, complete, "cut at %d, chunk %d", cut, chunk)
			start := 0
			if complete > 0 {
				start = ends[complete-1]
			}
			require.Equal(t, cut-start, d.Pending(), "Pending after a cut at %d (chunk %d)", cut, chunk)
		}
	}
}

func TestAFrameOverTheLimitIsAFrameTooLargeError(t *testing.T) {
	const limit = 10
	atLimit := AppendFrame(nil, KindAnswer, pattern(limit, 0))
	over := AppendFrame(nil, KindAnswer, pattern(limit+1, 0))

	k, p, err := ReadFrame(bytes.NewReader(atLimit), limit)
	require.NoError(t, err, "a frame at the limit")
	require.Equal(t, KindAnswer, k)
	require.Len(t, p, limit)

	checkTooLarge := func(t *testing.T, err error, size uint64, limit int) {
		t.Helper()
		var tl *FrameTooLargeError
		require.ErrorAs(t, err, &tl, "error %v (%T); want a *FrameTooLargeError", err, err)
		require.Equal(t, size, tl.Size)
		require.Equal(t, limit, tl.Limit)
		require.Contains(t, err.Error(), fmt.Sprint(size))
		require.Contains(t, err.Error(), fmt.Sprint(limit))
	}

	t.Run("ReadFrame", func(t *testing.T) {
		_, _, err := ReadFrame(bytes.NewReader(over), limit)
		checkTooLarge(t, err, limit+1, limit)
	})
	t.Run("ParseHeader", func(t *testing.T) {
		_, _, err := ParseHeader(over, limit)
		checkTooLarge(t, err, limit+1, limit)
	})
	t.Run("Decoder", func(t *testing.T) {
		d := Decoder{Limit: limit}
		got, err := feed(&d, append(atLimit, over...), 1)
		checkTooLarge(t, err, limit+1, limit)
		require.Len(t, got, 1, "the frame before the bad one is delivered")
		// The error sticks.
		_, _, ok, err2 := d.Next()
		require.False(t, ok)
		require.Equal(t, err, err2)
	})
	t.Run("default limit", func(t *testing.T) {
		huge := AppendHeader(nil, KindAnswer, math.MaxUint32)
		_, _, err := ReadFrame(bytes.NewReader(huge), 0)
		checkTooLarge(t, err, math.MaxUint32, DefaultMaxPayload)
		var d Decoder // zero value: DefaultMaxPayload
		_, err = feed(&d, huge, len(huge))
		checkTooLarge(t, err, math.MaxUint32, DefaultMaxPayload)
		_, err = feed(&Decoder{Limit: -1}, huge, len(huge))
		checkTooLarge(t, err, math.MaxUint32, DefaultMaxPayload)
	})
}

func TestABadKindIsErrBadKind(t *testing.T) {
	for _, k := range []Kind{0, MaxKind + 1, 200, 255} {
		t.Run(k.String(), func(t *testing.T) {
			enc := AppendFrame(nil, k, []byte("xyz"))
			_, _, err := ReadFrame(bytes.NewReader(enc), 0)
			require.ErrorIs(t, err, ErrBadKind)
			_, _, err = ParseHeader(enc, 0)
			require.ErrorIs(t, err, ErrBadKind)
			var d Decoder
			got, err := feed(&d, enc, 2)
			require.ErrorIs(t, err, ErrBadKind)
			require.Empty(t, got)
		})
	}
	// A bad kind is reported before the size: garbage is garbage.
	_, _, err := ParseHeader(AppendHeader(nil, 0, math.MaxUint32), 10)
	require.ErrorIs(t, err, ErrBadKind)

	// A no-main frame has no payload: one that says it has is garbage
	// too, found before a byte of it is read or a buffer made for it.
	for _, n := range []int{1, 3, 1 << 20} {
		_, _, err = ParseHeader(AppendHeader(nil, KindNoMain, n), 0)
		require.ErrorIs(t, err, ErrBadKind, "%d bytes", n)
		require.Contains(t, err.Error(), fmt.Sprintf("a no-main frame of %d bytes", n))
		var d Decoder
		got, err := feed(&d, AppendHeader(nil, KindNoMain, n), 2)
		require.ErrorIs(t, err, ErrBadKind)
		require.Empty(t, got)
	}
	k, n, err := ParseHeader(AppendHeader(nil, KindNoMain, 0), 0)
	require.NoError(t, err)
	require.Equal(t, KindNoMain, k)
	require.Zero(t, n)
}

func TestReadFrameOfATruncatedFrameIsUnexpectedEOF(t *testing.T) {
	enc := AppendFrame(nil, KindAnswer, []byte("0123456789"))
	for n := 1; n < len(enc); n++ {
		_, _, err := ReadFrame(bytes.NewReader(enc[:n]), 0)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "ReadFrame of the first %d of %d bytes", n, len(enc))
	}
	_, _, err := ReadFrame(bytes.NewReader(nil), 0)
	require.Equal(t, io.EOF, err, "ReadFrame of nothing")

	// A read error is passed on as it is.
	boom := errors.New("boom")
	_, _, err = ReadFrame(iotest.ErrReader(boom), 0)
	require.ErrorIs(t, err, boom)
	_, _, err = ReadFrame(io.MultiReader(bytes.NewReader(enc[:7]), iotest.ErrReader(boom)), 0)
	require.ErrorIs(t, err, boom)
}

type failWriter struct {
	writes  int
	failAt  int // the write that fails, counting from 1
	written bytes.Buffer
}

var errWrite = errors.New("write failed")

func (w *failWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes == w.failAt {
		return 0, errWrite
	}
	return w.written.Write(p)
}

func TestWriteFrameWritesOnceAndPassesOnWriteErrors(t *testing.T) {
	t.Run("small frame is one write", func(t *testing.T) {
		w := &failWriter{}
		require.NoError(t, WriteFrame(w, KindAnswer, pattern(64<<10, 1)))
		require.Equal(t, 1, w.writes)
	})
	t.Run("large frame", func(t *testing.T) {
		w := &failWriter{}
		p := pattern(64<<10+1, 1)
		require.NoError(t, WriteFrame(w, KindAnswer, p))
		require.Equal(t, AppendFrame(nil, KindAnswer, p), w.written.Bytes())
	})
	for _, n := range []int{8, 1 << 20} {
		for failAt := 1; failAt <= 2; failAt++ {
			if n == 8 && failAt == 2 {
				continue
			}
			w := &failWriter{failAt: failAt}
			err := WriteFrame(w, KindAnswer, pattern(n, 0))
			assert.ErrorIs(t, err, errWrite, "payload %d, write %d fails", n, failAt)
		}
	}
}

func TestWriteFrameAllocatesOnlyTheFrame(t *testing.T) {
	payload := []byte("12345678")
	const runs = 1000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		_ = WriteFrame(io.Discard, KindAnswer, payload)
	}
	runtime.ReadMemStats(&after)
	// A buffer of the frame's size at most, not one of a fixed 64 KiB.
	perCall := float64(after.TotalAlloc-before.TotalAlloc) / runs
	require.Less(t, perCall, 256.0, "WriteFrame of an 8-byte payload allocates %.0f bytes a call", perCall)
	// One allocation, the frame: an answer's way out of a child.
	require.Equal(t, 1.0, testing.AllocsPerRun(runs, func() { _ = WriteFrame(io.Discard, KindAnswer, payload) }), "allocations of WriteFrame")
	require.Equal(t, 1.0, testing.AllocsPerRun(runs, func() { _ = WriteNumberedFrame(io.Discard, KindAnswer, 300, payload) }), "allocations of WriteNumberedFrame")
}

func TestKindsKnowTheirNamesAndWhichAreTerminal(t *testing.T) {
	require.True(t, KindAnswer.Terminal())
	require.True(t, KindTaskFailed.Terminal())
	for _, k := range []Kind{0, KindInvocation, KindHeartbeat, KindProgress, KindStop, KindRetiring, KindNoMain, KindUsage, KindLog, 200} {
		require.False(t, k.Terminal(), "%v.Terminal()", k)
	}
	names := map[Kind]string{
		KindInvocation: "invocation", KindAnswer: "answer", KindTaskFailed: "task-failed",
		KindHeartbeat: "heartbeat", KindProgress: "progress", KindStop: "stop", KindRetiring: "retiring",
		KindNoMain: "no-main", KindUsage: "usage", KindLog: "log", 0: "kind(0)", MaxKind + 1: fmt.Sprintf("kind(%d)", MaxKind+1), 200: "kind(200)",
	}
	for k, want := range names {
		require.Equal(t, want, k.String())
	}
}

func TestAStopFrameSaysWhetherItIsAGoodbye(t *testing.T) {
	for _, goodbye := range []bool{false, true} {
		k, payload, err := ReadFrame(bytes.NewReader(AppendStop(nil, goodbye)), 0)
		require.NoError(t, err)
		require.Equal(t, KindStop, k)
		require.Equal(t, goodbye, IsGoodbye(payload), "goodbye %v", goodbye)
	}
	require.False(t, IsGoodbye([]byte{2}))
	require.False(t, IsGoodbye([]byte{1, 1}))
}

// A decoder's read buffer can serve a second decoder after the first is
// done with it: Release gives it up, Recycle takes it, and frames decode
// from it as from a new one.
func TestARecycledBufferDecodesLikeANewOne(t *testing.T) {
	var first Decoder
	require.Nil(t, first.Release(), "no buffer before the first read")
	buf := first.Buffer()
	n := copy(buf, AppendFrame(nil, KindAnswer, []byte("one")))
	first.Advance(n - 1) // the end of the frame never comes
	mine := first.Release()
	require.Len(t, mine, scratchSize)
	require.Zero(t, first.Pending(), "Release drops what the buffer held")

	var second Decoder
	require.False(t, second.Recycle(mine[:100]), "a buffer of another size")
	require.True(t, second.Recycle(mine))
	require.False(t, second.Recycle(make([]byte, scratchSize)), "a decoder keeps the buffer it has")
	buf = second.Buffer()
	require.Same(t, &mine[0], &buf[0], "the second decoder reads into the first's buffer")
	second.Advance(copy(buf, AppendFrame(AppendFrame(nil, KindAnswer, []byte("two")), KindProgress, []byte("three"))))
	for _, want := range []frame{{KindAnswer, []byte("two")}, {KindProgress, []byte("three")}} {
		k, p, ok, err := second.Next()
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, frame{k, p})
	}

	// Payloads are copies: the buffer's next use does not change them.
	second.Advance(copy(second.Buffer(), AppendFrame(nil, KindAnswer, []byte("four"))))
	k, p, ok, err := second.Next()
	require.NoError(t, err)
	require.True(t, ok)
	mine2 := second.Release()
	copy(mine2, bytes.Repeat([]byte{0xff}, 64))
	require.Equal(t, frame{KindAnswer, []byte("four")}, frame{k, p})

	// A decoder used after Release makes a buffer of its own.
	buf = first.Buffer()
	require.Len(t, buf, scratchSize)
	require.NotSame(t, &mine[0], &buf[0])
}

func TestOnlyAnswersFailuresAndNotesAreNumbered(t *testing.T) {
	for k := KindInvocation; k <= MaxKind; k++ {
		want := k == KindAnswer || k == KindTaskFailed || k == KindProgress || k == KindUsage || k == KindLog
		require.Equal(t, want, k.Numbered(), "%v.Numbered()", k)
	}
}

func TestNumberedFramesCarryTheirNumberBeforeThePayload(t *testing.T) {
	for _, n := range []uint64{1, 127, 128, 1 << 40, math.MaxUint64} {
		for _, size := range []int{0, 3, 64 << 10, 64<<10 + 1} {
			payload := pattern(size, byte(n%251))
			frame := AppendNumberedFrame(nil, KindAnswer, n, payload)
			require.Len(t, frame, HeaderSize+uvarintLen(n)+size)
			require.Equal(t, AppendNumberedHeader(nil, KindAnswer, n, size), frame[:len(frame)-size], "the header and the number come first")
			var w bytes.Buffer
			require.NoError(t, WriteNumberedFrame(&w, KindAnswer, n, payload))
			require.Equal(t, frame, w.Bytes(), "WriteNumberedFrame(%d, %d bytes)", n, size)
			k, p, err := ReadFrame(&w, 0)
			require.NoError(t, err)
			require.Equal(t, KindAnswer, k)
			got, rest, err := CutNumber(p)
			require.NoError(t, err)
			require.Equal(t, n, got)
			require.True(t, bytes.Equal(payload, rest), "the payload after number %d (%d bytes)", n, size)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {0, 1}, {0x80}, bytes.Repeat([]byte{0x80}, 10)} {
		_, _, err := CutNumber(bad)
		require.ErrorIs(t, err, ErrBadNumber, "CutNumber(% x)", bad)
	}
}

// The buffer of a large payload grows with the bytes that come, never to
// more than bigGrowth times them (or its first size), whatever the header
// claims, and ends at the payload's size.
func TestLargePayloadBufferGrowsWithTheBytes(t *testing.T) {
	for _, size := range []int{scratchSize, 3*scratchSize + 17, 64<<20 + 1, DefaultMaxPayload} {
		var d Decoder
		d.Advance(copy(d.Buffer(), AppendHeader(nil, KindAnswer, size)))
		_, _, ok, err := d.Next()
		require.NoError(t, err)
		require.False(t, ok)
		require.LessOrEqual(t, cap(d.big), 2*scratchSize, "a header alone, claiming %d bytes", size)
		if size > 64<<20+1 {
			continue // the rest of a whole GiB would take long, and show nothing new
		}
		want := pattern(size, 3)
		for rest := want; len(rest) > 0; {
			buf := d.Buffer()
			require.LessOrEqual(t, cap(d.big), max(2*scratchSize, bigGrowth*len(d.big)), "%d of %d bytes came", len(d.big), size)
			n := copy(buf, rest[:min(len(rest), 1<<20)])
			d.Advance(n)
			rest = rest[n:]
		}
		k, p, ok, err := d.Next()
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, KindAnswer, k)
		require.True(t, bytes.Equal(want, p), "the payload of %d bytes came back changed", size)
		require.Equal(t, len(p), cap(p), "the payload holds no more than its bytes")
		require.Nil(t, d.big, "the decoder keeps no reference to the payload")
	}
}
