package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/sentinel"
)

// Invocation is what the parent sends to run one task in a child.
type Invocation struct {
	Task     string    // the registered name
	Arg      []byte    // the encoded argument
	Deadline time.Time // zero: none; sent in nanoseconds, clamped to the years 1678 to 2262
	LockDir  string    // the dispatcher's lock directory; empty: none
	Last     bool      // the child exits after answering this one (its limit)
	// Linger asks a child that answered its last invocation to wait for
	// the parent's goodbye (a stop frame, and its pipes closed) before it
	// exits, so that its exit, a few hundred microseconds of teardown,
	// does not compete for the CPU with the answer's way to the caller.
	// It waits as an idle child waits for work, with no time limit: the
	// goodbye, a stop, or its parent's death ends it.
	Linger bool
	MaxRSS int64 // the child retires after this task if its peak RSS passed this many bytes; 0: never
	// TermSignal is the parent's termination signal, the first step of
	// the sequence that ends a call (0: none). The child turns it into
	// the end of the task's context. It installs the handler at once only
	// when CatchTerm is set, and keeps the signal's default otherwise,
	// until the parent asks it to stop (a stop frame) while the task
	// runs; then it installs it, and sends the signal to its own process
	// group itself, so that what the task started gets it as it would
	// from the parent.
	TermSignal int
	// CatchTerm says that the parent may send TermSignal to this call
	// (one it may cancel, or a server-mode worker).
	CatchTerm bool
	// Usage asks the child to measure what the call costs and send it,
	// in a usage note, before its answer.
	Usage bool
}

// Failure is what a child sends when a task fails.
type Failure struct {
	Message  string
	Stack    string // where it panicked; empty for a returned error
	Panicked bool
}

// ErrMalformed is returned for a payload that does not decode.
var ErrMalformed = sentinel.New("wire.ErrMalformed", "wire: malformed payload")

const (
	invocationVersion = 3
	flagLast          = 1 << 0
	flagLinger        = 1 << 1
	flagCatchTerm     = 1 << 2
	flagUsage         = 1 << 3
	flagPanicked      = 1 << 0
)

// AppendInvocation appends the encoding of inv to dst.
func AppendInvocation(dst []byte, inv *Invocation) []byte {
	var flags byte
	if inv.Last {
		flags |= flagLast
	}
	if inv.Linger {
		flags |= flagLinger
	}
	if inv.CatchTerm {
		flags |= flagCatchTerm
	}
	if inv.Usage {
		flags |= flagUsage
	}
	dst = append(dst, invocationVersion, flags)
	dst = appendString(dst, inv.Task)
	dst = binary.AppendVarint(dst, deadlineNanos(inv.Deadline))
	dst = appendString(dst, inv.LockDir)
	dst = binary.AppendVarint(dst, inv.MaxRSS)
	dst = binary.AppendUvarint(dst, uint64(inv.TermSignal))
	dst = binary.AppendUvarint(dst, uint64(len(inv.Arg)))
	return append(dst, inv.Arg...)
}

// deadlineNanos is the deadline t as nanoseconds since the Unix epoch, the
// form it travels in; 0 means none. A deadline outside what that holds (the
// years 1678 to 2262) is clamped to its edge, rather than wrapping round as
// t.UnixNano would (a deadline of time.Now().Add(math.MaxInt64) would
// arrive as one in 1734, long expired). A deadline at the epoch itself is
// sent 1 ns early, so that it is not taken for none.
func deadlineNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minDeadline):
		return math.MinInt64
	case t.After(maxDeadline):
		return math.MaxInt64
	}
	if ns := t.UnixNano(); ns != 0 {
		return ns
	}
	return -1
}

var (
	minDeadline = time.Unix(0, math.MinInt64)
	maxDeadline = time.Unix(0, math.MaxInt64)
)

// DecodeInvocation decodes an invocation. The argument aliases p.
func DecodeInvocation(p []byte) (*Invocation, error) {
	d := decoder{p: p}
	if v := d.byte(); v != invocationVersion && d.err == nil {
		return nil, fmt.Errorf("%w: invocation version %d, want %d", ErrMalformed, v, invocationVersion)
	}
	flags := d.byte()
	inv := &Invocation{Last: flags&flagLast != 0, Linger: flags&flagLinger != 0, CatchTerm: flags&flagCatchTerm != 0, Usage: flags&flagUsage != 0}
	inv.Task = d.string()
	if dl := d.varint(); dl != 0 {
		inv.Deadline = time.Unix(0, dl)
	}
	inv.LockDir = d.string()
	inv.MaxRSS = d.varint()
	inv.TermSignal = d.signal()
	inv.Arg = d.bytes()
	if err := d.finish("invocation"); err != nil {
		return nil, err
	}
	return inv, nil
}

// AppendFailure appends the encoding of f to dst.
func AppendFailure(dst []byte, f *Failure) []byte {
	var flags byte
	if f.Panicked {
		flags |= flagPanicked
	}
	dst = append(dst, flags)
	dst = appendString(dst, f.Message)
	return appendString(dst, f.Stack)
}

// DecodeFailure decodes a task failure.
func DecodeFailure(p []byte) (*Failure, error) {
	d := decoder{p: p}
	f := &Failure{Panicked: d.byte()&flagPanicked != 0}
	f.Message = d.string()
	f.Stack = d.string()
	if err := d.finish("task failure"); err != nil {
		return nil, err
	}
	return f, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads fields in order; the first error sticks.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.p) < 1 {
		d.fail("truncated")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

// signal reads a signal number: a uvarint from 0 (none) to 64, Linux's
// highest.
func (d *decoder) signal() int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 || v > MaxSignal {
		d.fail("bad signal number")
		return 0
	}
	d.p = d.p[n:]
	return int(v)
}

// MaxSignal is the highest signal number an invocation may carry: Linux's
// last real-time signal.
const MaxSignal = 64

func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.p)
	if k <= 0 || n > uint64(len(d.p)-k) {
		d.fail("bad length")
		return nil
	}
	b := d.p[k : k+int(n) : k+int(n)]
	d.p = d.p[k+int(n):]
	return b
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.p) != 0 {
		d.fail(fmt.Sprintf("%d bytes after the %s", len(d.p), what))
	}
	if d.err != nil {
		return fmt.Errorf("decoding %s: %w", what, d.err)
	}
	return nil
}
