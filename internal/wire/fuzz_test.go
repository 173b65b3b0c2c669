package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecoder feeds arbitrary bytes to a Decoder in pieces whose sizes come
// from splits, with a small limit and a small scratch buffer (so that the
// path for frames larger than the scratch buffer is reached with small
// inputs). The decoder must not panic, must not return a payload over the
// limit, must return frames that re-encode to a prefix of the input, and
// must agree with ReadFrame on the same bytes. The memory it holds for a
// large payload grows with the bytes that came, not with the size its
// header claims, and a payload it returns holds no more than its bytes.
//
// The seed corpus is in testdata/fuzz/FuzzDecoder; plain go test runs it.
func FuzzDecoder(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream, splits []byte, limit uint16, scratch uint8) {
		lim := 1 + int(limit)%4096 // never 0: that would mean 1 GiB
		d := Decoder{Limit: lim}
		if scratch != 0 {
			// Any size from a bare header up; 0 keeps the real 64 KiB.
			d.scratch = make([]byte, HeaderSize+int(scratch)%128)
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
			var tl *FrameTooLargeError
			if !errors.Is(derr, ErrBadKind) && !errors.As(derr, &tl) {
				t.Fatalf("Next: unexpected error %v", derr)
			}
			if len(stream)-len(enc) < HeaderSize {
				t.Fatalf("Next: error %v with only %d bytes after the last frame", derr, len(stream)-len(enc))
			}
			if _, _, err := ParseHeader(stream[len(enc):], lim); err == nil || err.Error() != derr.Error() {
				t.Fatalf("Next: error %v; the header after the last frame gives %v", derr, err)
			}
		} else if p := d.Pending(); p != len(stream)-len(enc) {
			t.Fatalf("Pending() = %d; want %d (input %d bytes, frames %d bytes)", p, len(stream)-len(enc), len(stream), len(enc))
		}

		// ReadFrame on the same bytes gives the same frames and ends the
		// same way.
		r := bytes.NewReader(stream)
		for i := 0; ; i++ {
			k, p, err := ReadFrame(r, lim)
			if err != nil {
				if i != len(got) {
					t.Fatalf("ReadFrame stopped after %d frames (%v); the decoder gave %d", i, err, len(got))
				}
				switch {
				case derr != nil:
					if err.Error() != derr.Error() {
						t.Fatalf("ReadFrame: %v; the decoder: %v", err, derr)
					}
				case len(stream) == len(enc):
					if err != io.EOF {
						t.Fatalf("ReadFrame at the end: %v; want io.EOF", err)
					}
				default:
					if err != io.ErrUnexpectedEOF {
						t.Fatalf("ReadFrame in a cut frame: %v; want io.ErrUnexpectedEOF", err)
					}
				}
				break
			}
			if i >= len(got) || got[i].kind != k || !bytes.Equal(got[i].payload, p) {
				t.Fatalf("ReadFrame frame %d (%v, %d bytes) differs from the decoder's", i, k, len(p))
			}
		}
	})
}

// FuzzDecodeInvocation decodes arbitrary bytes as an invocation. It must not
// panic. What decodes must encode back to the input made canonical (unknown
// flag bits cleared, varints in their shortest form), which is the input
// itself when the input was canonical; and encoding is a fixed point.
func FuzzDecodeInvocation(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		inv, err := DecodeInvocation(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeInvocation: %v; want an ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(p, in) {
			t.Fatal("DecodeInvocation changed its input")
		}
		if len(inv.Arg) > 0 && &inv.Arg[0] != &p[len(p)-len(inv.Arg)] {
			t.Fatal("Arg does not alias the end of the payload")
		}
		re := AppendInvocation(nil, inv)
		if want := canonicalInvocation(t, p); !bytes.Equal(re, want) {
			t.Fatalf("re-encoded to\n% x\nwant\n% x", re, want)
		}
		inv2, err := DecodeInvocation(re)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if inv.Task != inv2.Task || inv.LockDir != inv2.LockDir || inv.Last != inv2.Last || inv.Linger != inv2.Linger || inv.CatchTerm != inv2.CatchTerm || inv.MaxRSS != inv2.MaxRSS || inv.TermSignal != inv2.TermSignal ||
			!bytes.Equal(inv.Arg, inv2.Arg) || !inv.Deadline.Equal(inv2.Deadline) || inv.Deadline.IsZero() != inv2.Deadline.IsZero() {
			t.Fatalf("decoded %+v, then %+v", inv, inv2)
		}
		if re2 := AppendInvocation(nil, inv2); !bytes.Equal(re, re2) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

// FuzzDecodeFailure is FuzzDecodeInvocation for task failures.
func FuzzDecodeFailure(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		fl, err := DecodeFailure(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeFailure: %v; want an ErrMalformed", err)
			}
			return
		}
		re := AppendFailure(nil, fl)
		if want := canonicalFailure(t, p); !bytes.Equal(re, want) {
			t.Fatalf("re-encoded to\n% x\nwant\n% x", re, want)
		}
		fl2, err := DecodeFailure(re)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if *fl != *fl2 {
			t.Fatalf("decoded %+v, then %+v", fl, fl2)
		}
	})
}

// canonical rewrites a payload that decoded: flags keep only known bits,
// varints take their shortest form, everything else is copied.
type canonical struct {
	t   *testing.T
	p   []byte
	out []byte
}

func (c *canonical) byte(mask byte) {
	c.out = append(c.out, c.p[0]&mask)
	c.p = c.p[1:]
}

func (c *canonical) varint() {
	v, n := binary.Varint(c.p)
	if n <= 0 {
		c.t.Fatalf("a payload that decoded has a bad varint: % x", c.p)
	}
	c.out = binary.AppendVarint(c.out, v)
	c.p = c.p[n:]
}

// uvarint copies a uvarint in its shortest form and returns its value.
func (c *canonical) uvarint() uint64 {
	v, n := binary.Uvarint(c.p)
	if n <= 0 {
		c.t.Fatalf("a payload that decoded has a bad uvarint: % x", c.p)
	}
	c.out = binary.AppendUvarint(c.out, v)
	c.p = c.p[n:]
	return v
}

func (c *canonical) bytes() {
	v := c.uvarint()
	if v > uint64(len(c.p)) {
		c.t.Fatalf("a payload that decoded has a bad length: % x", c.p)
	}
	c.out = append(c.out, c.p[:v]...)
	c.p = c.p[v:]
}

func canonicalInvocation(t *testing.T, p []byte) []byte {
	c := &canonical{t: t, p: p}
	c.byte(0xff) // version
	c.byte(flagLast | flagLinger | flagCatchTerm)
	c.bytes()   // task
	c.varint()  // deadline
	c.bytes()   // lock dir
	c.varint()  // MaxRSS
	c.uvarint() // TermSignal
	c.bytes()   // argument
	return c.out
}

func canonicalFailure(t *testing.T, p []byte) []byte {
	c := &canonical{t: t, p: p}
	c.byte(flagPanicked)
	c.bytes() // message
	c.bytes() // stack
	return c.out
}

// TestFuzzSeedsMeanWhatTheirNamesSay keeps the committed seeds of the
// payload fuzzers meaningful as the encodings change: a seed whose name says
// it decodes (valid..., unknown-flags, non-minimal...) must decode, and
// every other one must not. A seed that silently stopped decoding would
// leave the fuzzer's re-encoding checks with nothing to check.
func TestFuzzSeedsMeanWhatTheirNamesSay(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"FuzzDecodeInvocation": func(p []byte) error { _, err := DecodeInvocation(p); return err },
		"FuzzDecodeFailure":    func(p []byte) error { _, err := DecodeFailure(p); return err },
	}
	for fuzz, decode := range decoders {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.NotEmpty(t, entries, dir)
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			require.Len(t, lines, 2, "%s/%s: want the header and one []byte value", fuzz, e.Name())
			require.Equal(t, "go test fuzz v1", lines[0])
			lit, ok := strings.CutPrefix(lines[1], "[]byte(")
			require.True(t, ok, "%s/%s: %q", fuzz, e.Name(), lines[1])
			s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			require.NoError(t, err, "%s/%s", fuzz, e.Name())
			err = decode([]byte(s))
			name := e.Name()
			if strings.HasPrefix(name, "valid") || strings.HasPrefix(name, "unknown-flags") || strings.HasPrefix(name, "non-minimal") {
				require.NoError(t, err, "%s/%s should decode", fuzz, name)
			} else {
				require.ErrorIs(t, err, ErrMalformed, "%s/%s should not decode", fuzz, name)
			}
		}
	}
}

// FuzzCutNumber cuts arbitrary bytes as a numbered frame's payload. It
// must not panic; a number it returns is at least 1, and what follows it
// is the end of the input; and a numbered frame made of that number and
// that rest reads back, with ReadFrame, as the same number and rest.
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
		n, rest, err := CutNumber(p)
		if err != nil {
			if !errors.Is(err, ErrBadNumber) {
				t.Fatalf("CutNumber(% x): %v; want an ErrBadNumber", p, err)
			}
			return
		}
		if n == 0 {
			t.Fatalf("CutNumber(% x) = 0 with no error", p)
		}
		if !bytes.HasSuffix(p, rest) || len(rest) >= len(p) {
			t.Fatalf("CutNumber(% x): the rest % x is not what follows the number", p, rest)
		}
		frame := AppendNumberedFrame(nil, KindProgress, n, rest)
		var w bytes.Buffer
		require.NoError(t, WriteNumberedFrame(&w, KindProgress, n, rest))
		if !bytes.Equal(frame, w.Bytes()) {
			t.Fatalf("WriteNumberedFrame wrote % x; AppendNumberedFrame made % x", w.Bytes(), frame)
		}
		k, payload, err := ReadFrame(bytes.NewReader(frame), 0)
		require.NoError(t, err)
		n2, rest2, err := CutNumber(payload)
		if err != nil || k != KindProgress || n2 != n || !bytes.Equal(rest2, rest) {
			t.Fatalf("the frame of number %d read back as %v, number %d, % x, %v", n, k, n2, rest2, err)
		}
	})
}
