package procman

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecoder feeds arbitrary bytes to a frameDecoder in pieces whose sizes come
// from splits, with a small limit and a small scratch buffer (so that the
// path for frames larger than the scratch buffer is reached with small
// inputs). The decoder must not panic, must not return a payload over the
// limit, must return frames that re-encode to a prefix of the input, and
// must agree with readFrame on the same bytes. The memory it holds for a
// large payload grows with the bytes that came, not with the size its
// header claims, and a payload it returns holds no more than its bytes.
//
// The seed corpus is in testdata/fuzz/FuzzDecoder; plain go test runs it.
func FuzzDecoder(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream, splits []byte, limit uint16, scratch uint8) {
		lim := 1 + int(limit)%4096 // never 0: that would mean 1 GiB
		d := frameDecoder{Limit: lim}
		if scratch != 0 {
			// Any size from a bare header up; 0 keeps the real 64 KiB.
			d.scratch = make([]byte, headerSize+int(scratch)%128)
		}

		var got []frame
		var derr error
		rest := stream
		for i := 0; len(rest) > 0 && derr == nil; i++ {
			buf := d.Buffer()
			if len(buf) == 0 {
				t.Fatalf("Buffer() is empty with %d bytes pending", d.Pending())
			}
			chunk := len(rest)
			if len(splits) > 0 {
				chunk = 1 + int(splits[i%len(splits)])
			}
			if d.big != nil && cap(d.big) > max(2*len(d.scratch), bigGrowth*len(d.big)) {
				t.Fatalf("the buffer of a large payload holds %d bytes for the %d that came (of %d)", cap(d.big), len(d.big), d.bigSize)
			}
			n := copy(buf, rest[:min(chunk, len(rest))])
			d.Advance(n)
			rest = rest[n:]
			for {
				k, p, ok, err := d.Next()
				if err != nil {
					derr = err
					break
				}
				if !ok {
					break
				}
				if len(p) > lim {
					t.Fatalf("Next returned a payload of %d bytes; the limit is %d", len(p), lim)
				}
				if cap(p) != len(p) {
					t.Fatalf("Next returned a payload of %d bytes that holds %d", len(p), cap(p))
				}
				got = append(got, frame{k, p})
			}
		}

		enc := encodeFrames(got)
		if !bytes.HasPrefix(stream, enc) {
			t.Fatalf("the %d frames returned re-encode to %d bytes that are not a prefix of the input", len(got), len(enc))
		}
		if derr != nil {
			// The error is about the header that follows the frames.
			var tl *frameTooLargeError
			if !errors.Is(derr, errNotAFrame) && !errors.As(derr, &tl) {
				t.Fatalf("Next: unexpected error %v", derr)
			}
			if len(stream)-len(enc) < headerSize {
				t.Fatalf("Next: error %v with only %d bytes after the last frame", derr, len(stream)-len(enc))
			}
			if _, _, err := parseHeader(stream[len(enc):], lim); err == nil || err.Error() != derr.Error() {
				t.Fatalf("Next: error %v; the header after the last frame gives %v", derr, err)
			}
		} else if p := d.Pending(); p != len(stream)-len(enc) {
			t.Fatalf("Pending() = %d; want %d (input %d bytes, frames %d bytes)", p, len(stream)-len(enc), len(stream), len(enc))
		}

		// readFrame on the same bytes gives the same frames and ends the
		// same way.
		r := bytes.NewReader(stream)
		for i := 0; ; i++ {
			k, p, err := readFrame(r, lim)
			if err != nil {
				if i != len(got) {
					t.Fatalf("readFrame stopped after %d frames (%v); the decoder gave %d", i, err, len(got))
				}
				switch {
				case derr != nil:
					if err.Error() != derr.Error() {
						t.Fatalf("readFrame: %v; the decoder: %v", err, derr)
					}
				case len(stream) == len(enc):
					if err != io.EOF {
						t.Fatalf("readFrame at the end: %v; want io.EOF", err)
					}
				default:
					if err != io.ErrUnexpectedEOF {
						t.Fatalf("readFrame in a cut frame: %v; want io.ErrUnexpectedEOF", err)
					}
				}
				break
			}
			if i >= len(got) || got[i].kind != k || !bytes.Equal(got[i].payload, p) {
				t.Fatalf("readFrame frame %d (%v, %d bytes) differs from the decoder's", i, k, len(p))
			}
		}
	})
}

// FuzzCutNumber cuts arbitrary bytes as a numbered frame's payload. It
// must not panic; a number it returns is at least 1, and what follows it
// is the end of the input; and a numbered frame made of that number and
// that rest reads back, with readFrame, as the same number and rest.
func FuzzCutNumber(f *testing.F) {
	f.Add([]byte{1, 'x'})
	f.Add([]byte{0, 'x'})
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x80, 0x01})                                                       // 128
	f.Add([]byte{0x81, 0x00})                                                       // 1, not in its shortest form
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})       // the largest
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}) // too long
	f.Fuzz(func(t *testing.T, p []byte) {
		n, kind, rest, err := cutNumber(p)
		if err != nil {
			if !errors.Is(err, errBadNumber) {
				t.Fatalf("cutNumber(% x): %v; want an errBadNumber", p, err)
			}
			return
		}
		if n == 0 {
			t.Fatalf("cutNumber(% x) = 0 with no error", p)
		}
		if !bytes.HasSuffix(p, rest) || len(rest) >= len(p)-1 || p[len(p)-len(rest)-1] != byte(kind) {
			t.Fatalf("cutNumber(% x): the kind %d and the rest % x are not what follows the number", p, kind, rest)
		}
		frame := appendNumberedFrame(nil, frameNote, n, kind, rest)
		var w bytes.Buffer
		require.NoError(t, writeNumberedFrame(&w, frameNote, n, kind, rest))
		if !bytes.Equal(frame, w.Bytes()) {
			t.Fatalf("writeNumberedFrame wrote % x; appendNumberedFrame made % x", w.Bytes(), frame)
		}
		c, payload, err := readFrame(bytes.NewReader(frame), 0)
		require.NoError(t, err)
		n2, kind2, rest2, err := cutNumber(payload)
		if err != nil || c != frameNote || n2 != n || kind2 != kind || !bytes.Equal(rest2, rest) {
			t.Fatalf("the frame of number %d read back as %v, number %d, kind %d, % x, %v", n, c, n2, kind2, rest2, err)
		}
	})
}
