package wire

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func requireInvocation(t *testing.T, want, got *Invocation) {
	t.Helper()
	require.Equal(t, want.Task, got.Task, "Task")
	require.Equal(t, want.LockDir, got.LockDir, "LockDir")
	require.Equal(t, want.Last, got.Last, "Last")
	require.Equal(t, want.Linger, got.Linger, "Linger")
	require.Equal(t, want.CatchTerm, got.CatchTerm, "CatchTerm")
	require.Equal(t, want.MaxRSS, got.MaxRSS, "MaxRSS")
	require.Equal(t, want.TermSignal, got.TermSignal, "TermSignal")
	require.True(t, bytes.Equal(want.Arg, got.Arg), "Arg: %d bytes, want %d", len(got.Arg), len(want.Arg))
	require.Equal(t, want.Deadline.IsZero(), got.Deadline.IsZero(), "Deadline %v, want %v", got.Deadline, want.Deadline)
	require.True(t, want.Deadline.Equal(got.Deadline), "Deadline %v, want %v", got.Deadline, want.Deadline)
}

func TestInvocationRoundTrip(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name string
		inv  Invocation
	}{
		{"zero", Invocation{}},
		{"no deadline", Invocation{Task: "square", Arg: []byte("7")}},
		{"deadline", Invocation{Task: "square", Arg: []byte("7"), Deadline: now.Add(time.Minute)}},
		{"deadline in the past", Invocation{Task: "t", Deadline: time.Date(1969, 7, 20, 20, 17, 40, 123, time.UTC)}},
		{"deadline 1ns after the epoch", Invocation{Task: "t", Deadline: time.Unix(0, 1)}},
		{"last", Invocation{Task: "t", Last: true}},
		{"last, lingering", Invocation{Task: "t", Last: true, Linger: true}},
		{"lock dir", Invocation{Task: "t", LockDir: "/tmp/procrastinate-123/locks"}},
		{"max rss", Invocation{Task: "t", MaxRSS: 512 << 20}},
		{"max rss extremes", Invocation{Task: "t", MaxRSS: math.MaxInt64, Last: true}},
		{"negative max rss", Invocation{Task: "t", MaxRSS: -1}},
		{"term signal", Invocation{Task: "t", TermSignal: 15}},
		{"term signal, caught at once", Invocation{Task: "t", TermSignal: 15, CatchTerm: true}},
		{"highest term signal", Invocation{Task: "t", TermSignal: 64, Last: true}},
		{"empty arg", Invocation{Task: "t", Arg: []byte{}, Last: true}},
		{"large arg", Invocation{Task: "big", Arg: pattern(3<<20+1, 5), Deadline: now, LockDir: "/l", MaxRSS: 1 << 30, Last: true}},
		{"names with bytes of every kind", Invocation{Task: "naïve/\x00\xff任务", LockDir: "\n"}},
		{"long names", Invocation{Task: string(pattern(300, 1)), LockDir: string(pattern(70000, 2))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			enc := AppendInvocation(nil, &c.inv)
			got, err := DecodeInvocation(enc)
			require.NoError(t, err)
			requireInvocation(t, &c.inv, got)
			// Canonical: encoding what was decoded gives the same bytes.
			require.Equal(t, enc, AppendInvocation(nil, got))
			// It appends.
			prefixed := AppendInvocation([]byte("prefix"), &c.inv)
			require.Equal(t, enc, prefixed[len("prefix"):])
		})
	}
}

func TestTheDecodedArgAliasesThePayloadWithoutSpareCapacity(t *testing.T) {
	enc := AppendInvocation(nil, &Invocation{Task: "t", Arg: []byte("abc")})
	inv, err := DecodeInvocation(enc)
	require.NoError(t, err)
	enc[len(enc)-1] = 'X'
	require.Equal(t, "abX", string(inv.Arg), "the argument aliases the payload, as documented")
	// The alias has no spare capacity: appending to it cannot overwrite
	// what follows in the payload.
	require.Equal(t, len(inv.Arg), cap(inv.Arg))
}

// TestDeadlinesOutOfRangeAreClamped checks deadlines that nanoseconds since the
// epoch cannot hold: they are clamped, not wrapped round.
func TestDeadlinesOutOfRangeAreClamped(t *testing.T) {
	maxT, minT := time.Unix(0, math.MaxInt64), time.Unix(0, math.MinInt64)
	cases := []struct {
		name     string
		deadline time.Time
		want     time.Time
	}{
		{"far future", time.Now().Add(math.MaxInt64), maxT},
		{"year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), maxT},
		{"the latest that fits", maxT, maxT},
		{"year 1500", time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), minT},
		{"the earliest that fits", minT, minT},
		{"the epoch", time.Unix(0, 0), time.Unix(0, -1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeInvocation(AppendInvocation(nil, &Invocation{Task: "t", Deadline: c.deadline}))
			require.NoError(t, err)
			require.True(t, c.want.Equal(got.Deadline), "Deadline = %v; want %v", got.Deadline.UTC(), c.want.UTC())
		})
	}
}

func TestDecodeInvocationRefusesMalformedPayloads(t *testing.T) {
	full := AppendInvocation(nil, &Invocation{Task: "task", Arg: []byte("argument"), Deadline: time.Now(), LockDir: "/locks", MaxRSS: 300 << 20, Last: true})
	for n := range len(full) {
		_, err := DecodeInvocation(full[:n])
		require.ErrorIs(t, err, ErrMalformed, "DecodeInvocation of the first %d of %d bytes", n, len(full))
	}
	for _, extra := range [][]byte{{0}, []byte("more")} {
		_, err := DecodeInvocation(append(full[:len(full):len(full)], extra...))
		require.ErrorIs(t, err, ErrMalformed, "DecodeInvocation with %d bytes after it", len(extra))
		require.Contains(t, err.Error(), "after the invocation")
	}
	for _, v := range []byte{0, 1, 2, 4, 255} {
		bad := append([]byte{v}, full[1:]...)
		_, err := DecodeInvocation(bad)
		require.ErrorIs(t, err, ErrMalformed, "version %d", v)
		require.Contains(t, err.Error(), "version")
	}
	// A length that runs past the end, and one that overflows.
	_, err := DecodeInvocation([]byte{invocationVersion, 0, 5, 'a'})
	require.ErrorIs(t, err, ErrMalformed)
	_, err = DecodeInvocation([]byte{invocationVersion, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	require.ErrorIs(t, err, ErrMalformed)
	// A deadline varint that never ends, and a MaxRSS varint that overflows.
	_, err = DecodeInvocation([]byte{invocationVersion, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80})
	require.ErrorIs(t, err, ErrMalformed)
	_, err = DecodeInvocation([]byte{invocationVersion, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0})
	require.ErrorIs(t, err, ErrMalformed)
	// A term signal past Linux's last one (64).
	_, err = DecodeInvocation([]byte{invocationVersion, 0, 0, 0, 0, 0, 65, 0})
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "signal")
}

func TestFailureRoundTrip(t *testing.T) {
	cases := []Failure{
		{},
		{Message: "boom"},
		{Message: "runtime error: index out of range", Stack: "goroutine 1 [running]:\nmain.main()\n", Panicked: true},
		{Message: string(pattern(100_000, 1)), Stack: string(pattern(200_000, 2))},
		{Panicked: true},
	}
	for _, f := range cases {
		enc := AppendFailure(nil, &f)
		got, err := DecodeFailure(enc)
		require.NoError(t, err)
		require.Equal(t, f, *got)
		require.Equal(t, enc, AppendFailure(nil, got))
	}
}

func TestDecodeFailureRefusesMalformedPayloads(t *testing.T) {
	full := AppendFailure(nil, &Failure{Message: "message", Stack: "stack", Panicked: true})
	for n := range len(full) {
		_, err := DecodeFailure(full[:n])
		require.ErrorIs(t, err, ErrMalformed, "DecodeFailure of the first %d of %d bytes", n, len(full))
	}
	_, err := DecodeFailure(append(full, 'x'))
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "1 bytes after the task failure")
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
