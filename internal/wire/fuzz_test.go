package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

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
