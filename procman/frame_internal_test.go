package procman

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
	kind    frameClass
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
		b = appendFrame(b, f.kind, f.payload)
	}
	return b
}

// feed gives data to d in pieces of at most chunk bytes, each no larger than
// the buffer d hands out, and returns every frame d gives back. It stops at
// the first error.
func feed(d *frameDecoder, data []byte, chunk int) ([]frame, error) {
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
var boundarySizes = []int{0, 1, 8, 1000, scratchSize - headerSize - 1, scratchSize - headerSize, scratchSize - headerSize + 1, scratchSize, 200_003}

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range boundarySizes {
		for _, k := range []frameClass{frameInvocation, frameReply, frameReply, frameNote, frameNote, frameStop, frameNote} { // frameNoMain has no payload: TestABadKindIsErrBadKind
			t.Run(fmt.Sprintf("%v/%d", k, n), func(t *testing.T) {
				payload := pattern(n, byte(k))
				enc := appendFrame(nil, k, payload)
				require.Len(t, enc, headerSize+n)

				var w bytes.Buffer
				require.NoError(t, writeFrame(&w, k, payload))
				require.Equal(t, enc, w.Bytes(), "writeFrame and appendFrame disagree")

				gk, gp, err := readFrame(bytes.NewReader(enc), n)
				require.NoError(t, err)
				require.Equal(t, k, gk)
				require.True(t, bytes.Equal(payload, gp), "readFrame payload differs")

				// One byte at a time, as a slow pipe would give it.
				gk, gp, err = readFrame(iotest.OneByteReader(bytes.NewReader(enc)), 0)
				require.NoError(t, err)
				require.Equal(t, k, gk)
				require.True(t, bytes.Equal(payload, gp), "readFrame (one byte reads) payload differs")

				var d frameDecoder
				got, err := feed(&d, enc, len(enc))
				require.NoError(t, err)
				requireFrames(t, []frame{{k, payload}}, got, "frameDecoder")
				require.Zero(t, d.Pending())
			})
		}
	}
}

func TestReadFrameReadsFramesInOrderToACleanEOF(t *testing.T) {
	fs := []frame{{frameReply, []byte("a")}, {frameNote, nil}, {frameNote, pattern(70_000, 3)}, {frameReply, []byte("end")}}
	r := bytes.NewReader(encodeFrames(fs))
	for i, f := range fs {
		k, p, err := readFrame(r, 0)
		require.NoError(t, err, "frame %d", i)
		require.Equal(t, f.kind, k)
		require.True(t, bytes.Equal(f.payload, p), "frame %d payload", i)
	}
	_, _, err := readFrame(r, 0)
	require.Equal(t, io.EOF, err, "readFrame at a clean end")
}

// TestDecoderDecodesAStreamFedInChunksOfAnySize feeds streams to a frameDecoder in pieces of every size from
// 1 up, and of odd sizes around the scratch buffer.
func TestDecoderDecodesAStreamFedInChunksOfAnySize(t *testing.T) {
	var small []frame
	for i := range 12 {
		small = append(small, frame{frameClass(1 + i%int(frameNote)), pattern(i*3, byte(i))})
	}
	// Frames of 1000 bytes straddle the end of the scratch buffer again and
	// again, so the decoder must move partial frames to the front.
	var straddling []frame
	for i := range 150 {
		straddling = append(straddling, frame{frameNote, pattern(1000+i%7, byte(i))})
	}
	var mixed []frame
	mixed = append(mixed, small[:3]...)
	mixed = append(mixed, frame{frameReply, pattern(3*scratchSize+17, 9)}) // larger than scratch
	mixed = append(mixed, small[3:6]...)
	mixed = append(mixed, frame{frameReply, pattern(scratchSize-headerSize, 10)}) // fills scratch exactly
	mixed = append(mixed, frame{frameReply, pattern(scratchSize-headerSize+1, 11)})
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
				var d frameDecoder
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
		{frameReply, []byte("hello")},
		{frameNote, nil},
		{frameReply, pattern(scratchSize+100, 1)},
		{frameNote, []byte("tail")},
	}
	stream := encodeFrames(fs)
	var ends []int // where each frame ends in the stream
	off := 0
	for _, f := range fs {
		off += headerSize + len(f.payload)
		ends = append(ends, off)
	}
	var cuts []int
	for i := 0; i <= len(stream); i++ {
		if i < ends[1]+2*headerSize || i > ends[2]-2*headerSize || i%997 == 0 {
			cuts = append(cuts, i)
		}
	}
	for _, cut := range cuts {
		for _, chunk := range []int{cut + 1, 3} {
			var d frameDecoder
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
	atLimit := appendFrame(nil, frameReply, pattern(limit, 0))
	over := appendFrame(nil, frameReply, pattern(limit+1, 0))

	k, p, err := readFrame(bytes.NewReader(atLimit), limit)
	require.NoError(t, err, "a frame at the limit")
	require.Equal(t, frameReply, k)
	require.Len(t, p, limit)

	checkTooLarge := func(t *testing.T, err error, size uint64, limit int) {
		t.Helper()
		var tl *frameTooLargeError
		require.ErrorAs(t, err, &tl, "error %v (%T); want a *frameTooLargeError", err, err)
		require.Equal(t, size, tl.Size)
		require.Equal(t, limit, tl.Limit)
		require.Contains(t, err.Error(), fmt.Sprint(size))
		require.Contains(t, err.Error(), fmt.Sprint(limit))
	}

	t.Run("readFrame", func(t *testing.T) {
		_, _, err := readFrame(bytes.NewReader(over), limit)
		checkTooLarge(t, err, limit+1, limit)
	})
	t.Run("parseHeader", func(t *testing.T) {
		_, _, err := parseHeader(over, limit)
		checkTooLarge(t, err, limit+1, limit)
	})
	t.Run("frameDecoder", func(t *testing.T) {
		d := frameDecoder{Limit: limit}
		got, err := feed(&d, append(atLimit, over...), 1)
		checkTooLarge(t, err, limit+1, limit)
		require.Len(t, got, 1, "the frame before the bad one is delivered")
		// The error sticks.
		_, _, ok, err2 := d.Next()
		require.False(t, ok)
		require.Equal(t, err, err2)
	})
	t.Run("default limit", func(t *testing.T) {
		huge := appendHeader(nil, frameReply, math.MaxUint32)
		_, _, err := readFrame(bytes.NewReader(huge), 0)
		checkTooLarge(t, err, math.MaxUint32, defaultMaxPayload)
		var d frameDecoder // zero value: defaultMaxPayload
		_, err = feed(&d, huge, len(huge))
		checkTooLarge(t, err, math.MaxUint32, defaultMaxPayload)
		_, err = feed(&frameDecoder{Limit: -1}, huge, len(huge))
		checkTooLarge(t, err, math.MaxUint32, defaultMaxPayload)
	})
}

func TestABadKindIsErrBadKind(t *testing.T) {
	for _, k := range []frameClass{0, maxFrameClass + 1, 200, 255} {
		t.Run(k.String(), func(t *testing.T) {
			enc := appendFrame(nil, k, []byte("xyz"))
			_, _, err := readFrame(bytes.NewReader(enc), 0)
			require.ErrorIs(t, err, errNotAFrame)
			_, _, err = parseHeader(enc, 0)
			require.ErrorIs(t, err, errNotAFrame)
			var d frameDecoder
			got, err := feed(&d, enc, 2)
			require.ErrorIs(t, err, errNotAFrame)
			require.Empty(t, got)
		})
	}
	// A bad kind is reported before the size: garbage is garbage.
	_, _, err := parseHeader(appendHeader(nil, 0, math.MaxUint32), 10)
	require.ErrorIs(t, err, errNotAFrame)

	// A no-main frame has no payload: one that says it has is garbage
	// too, found before a byte of it is read or a buffer made for it.
	for _, n := range []int{1, 3, 1 << 20} {
		_, _, err = parseHeader(appendHeader(nil, frameNoMain, n), 0)
		require.ErrorIs(t, err, errNotAFrame, "%d bytes", n)
		require.Contains(t, err.Error(), fmt.Sprintf("a no-main frame of %d bytes", n))
		var d frameDecoder
		got, err := feed(&d, appendHeader(nil, frameNoMain, n), 2)
		require.ErrorIs(t, err, errNotAFrame)
		require.Empty(t, got)
	}
	k, n, err := parseHeader(appendHeader(nil, frameNoMain, 0), 0)
	require.NoError(t, err)
	require.Equal(t, frameNoMain, k)
	require.Zero(t, n)
}

func TestReadFrameOfATruncatedFrameIsUnexpectedEOF(t *testing.T) {
	enc := appendFrame(nil, frameReply, []byte("0123456789"))
	for n := 1; n < len(enc); n++ {
		_, _, err := readFrame(bytes.NewReader(enc[:n]), 0)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "readFrame of the first %d of %d bytes", n, len(enc))
	}
	_, _, err := readFrame(bytes.NewReader(nil), 0)
	require.Equal(t, io.EOF, err, "readFrame of nothing")

	// A read error is passed on as it is.
	boom := errors.New("boom")
	_, _, err = readFrame(iotest.ErrReader(boom), 0)
	require.ErrorIs(t, err, boom)
	_, _, err = readFrame(io.MultiReader(bytes.NewReader(enc[:7]), iotest.ErrReader(boom)), 0)
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
		require.NoError(t, writeFrame(w, frameReply, pattern(64<<10, 1)))
		require.Equal(t, 1, w.writes)
	})
	t.Run("large frame", func(t *testing.T) {
		w := &failWriter{}
		p := pattern(64<<10+1, 1)
		require.NoError(t, writeFrame(w, frameReply, p))
		require.Equal(t, appendFrame(nil, frameReply, p), w.written.Bytes())
	})
	for _, n := range []int{8, 1 << 20} {
		for failAt := 1; failAt <= 2; failAt++ {
			if n == 8 && failAt == 2 {
				continue
			}
			w := &failWriter{failAt: failAt}
			err := writeFrame(w, frameReply, pattern(n, 0))
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
		_ = writeFrame(io.Discard, frameReply, payload)
	}
	runtime.ReadMemStats(&after)
	// A buffer of the frame's size at most, not one of a fixed 64 KiB.
	perCall := float64(after.TotalAlloc-before.TotalAlloc) / runs
	require.Less(t, perCall, 256.0, "writeFrame of an 8-byte payload allocates %.0f bytes a call", perCall)
	// One allocation, the frame: an answer's way out of a child.
	require.Equal(t, 1.0, testing.AllocsPerRun(runs, func() { _ = writeFrame(io.Discard, frameReply, payload) }), "allocations of writeFrame")
	require.Equal(t, 1.0, testing.AllocsPerRun(runs, func() { _ = writeNumberedFrame(io.Discard, frameReply, 300, testAnswer, payload) }), "allocations of writeNumberedFrame")
}

func TestFrameClassesKnowTheirNames(t *testing.T) {
	names := map[frameClass]string{
		frameInvocation: "invocation", frameReply: "reply", frameNote: "note", frameStop: "stop",
		frameNoMain: "no-main", 0: "class(0)", maxFrameClass + 1: fmt.Sprintf("class(%d)", maxFrameClass+1), 200: "class(200)",
	}
	for c, want := range names {
		require.Equal(t, want, c.String())
	}
}

func TestAStopFrameSaysWhetherItIsAGoodbye(t *testing.T) {
	for _, goodbye := range []bool{false, true} {
		k, payload, err := readFrame(bytes.NewReader(appendStop(nil, goodbye)), 0)
		require.NoError(t, err)
		require.Equal(t, frameStop, k)
		require.Equal(t, goodbye, isGoodbye(payload), "goodbye %v", goodbye)
	}
	require.False(t, isGoodbye([]byte{2}))
	require.False(t, isGoodbye([]byte{1, 1}))
}

func TestOnlyRepliesAndNotesAreNumbered(t *testing.T) {
	for c := frameInvocation; c <= maxFrameClass; c++ {
		want := c == frameReply || c == frameNote
		require.Equal(t, want, c.numbered(), "%v.numbered()", c)
	}
}

func TestNumberedFramesCarryTheirNumberAndKindBeforeThePayload(t *testing.T) {
	for _, n := range []uint64{1, 127, 128, 1 << 40, math.MaxUint64} {
		for _, size := range []int{0, 3, 64 << 10, 64<<10 + 1} {
			payload := pattern(size, byte(n%251))
			kind := Kind(n % 256)
			frame := appendNumberedFrame(nil, frameNote, n, kind, payload)
			require.Len(t, frame, headerSize+uvarintLen(n)+1+size)
			require.Equal(t, appendNumberedHeader(nil, frameNote, n, kind, size), frame[:len(frame)-size], "the header, the number and the kind come first")
			var w bytes.Buffer
			require.NoError(t, writeNumberedFrame(&w, frameNote, n, kind, payload))
			require.Equal(t, frame, w.Bytes(), "writeNumberedFrame(%d, %d bytes)", n, size)
			c, p, err := readFrame(&w, 0)
			require.NoError(t, err)
			require.Equal(t, frameNote, c)
			got, gotKind, rest, err := cutNumber(p)
			require.NoError(t, err)
			require.Equal(t, n, got)
			require.Equal(t, kind, gotKind)
			require.True(t, bytes.Equal(payload, rest), "the payload after number %d (%d bytes)", n, size)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {0, 1}, {1}, {0x80}, bytes.Repeat([]byte{0x80}, 10)} {
		_, _, _, err := cutNumber(bad)
		require.ErrorIs(t, err, errBadNumber, "cutNumber(% x)", bad)
	}
}

// The buffer of a large payload grows with the bytes that come, never to
// more than bigGrowth times them (or its first size), whatever the header
// claims, and ends at the payload's size.
func TestLargePayloadBufferGrowsWithTheBytes(t *testing.T) {
	for _, size := range []int{scratchSize, 3*scratchSize + 17, 64<<20 + 1, defaultMaxPayload} {
		var d frameDecoder
		d.Advance(copy(d.Buffer(), appendHeader(nil, frameReply, size)))
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
		require.Equal(t, frameReply, k)
		require.True(t, bytes.Equal(want, p), "the payload of %d bytes came back changed", size)
		require.Equal(t, len(p), cap(p), "the payload holds no more than its bytes")
		require.Nil(t, d.big, "the decoder keeps no reference to the payload")
	}
}
