// Package wire is the framing that parent and child speak over their pipes:
// a frame is a 4-byte little-endian payload length, a 1-byte kind, and the
// payload. It also holds the encodings of the payloads both sides exchange
// (invocations, task errors).
//
// The framing is the same in both directions and for every kind, so one
// decoder serves the parent's non-blocking reads and the child's blocking
// ones.
package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/procrastinate-go/procrastinate/internal/sentinel"
)

// HeaderSize is the size of a frame's header: length (4 bytes) and kind (1).
const HeaderSize = 5

// DefaultMaxPayload is the payload size limit used where none is set: 1 GiB.
const DefaultMaxPayload = 1 << 30

// Kind says what a frame carries.
type Kind uint8

// The kinds of frame. Parent to child: Invocation, Stop. Child to parent:
// Answer, TaskFailed, Heartbeat, Progress, Retiring, NoMain, Usage, Log.
const (
	KindInvocation Kind = 1  // an encoded [Invocation]
	KindAnswer     Kind = 2  // the task's encoded result
	KindTaskFailed Kind = 3  // an encoded [Failure]
	KindHeartbeat  Kind = 4  // the child is alive; empty payload
	KindProgress   Kind = 5  // free-form progress from the task
	KindStop       Kind = 6  // parent asks the child to finish; see AppendStop
	KindRetiring   Kind = 7  // the child takes no more work after its next answer; empty payload
	KindNoMain     Kind = 8  // the child never reached procrastinate.Main and will take no task; empty payload
	KindUsage      Kind = 9  // an encoded [Usage]: what the task cost, sent just before its answer
	KindLog        Kind = 10 // an encoded [LogRecord]: a record the task logged

	// MaxKind is the last kind: a header's kind byte of 0, or above
	// MaxKind, says that what was read is not a frame.
	MaxKind = KindLog
)

// Terminal reports whether a frame of kind k ends the task in flight (an
// answer or a failure).
func (k Kind) Terminal() bool { return k == KindAnswer || k == KindTaskFailed }

// Numbered reports whether a frame of kind k belongs to one invocation and
// says which: an answer, a failure, progress, usage, a log record. Its payload begins with the
// invocation's number, a uvarint (see [AppendNumberedHeader] and
// [CutNumber]). A parent numbers the invocations it sends to one child
// from 1, in the order it sends them.
func (k Kind) Numbered() bool {
	return k.Terminal() || k == KindProgress || k == KindUsage || k == KindLog
}

func (k Kind) String() string {
	switch k {
	case KindInvocation:
		return "invocation"
	case KindAnswer:
		return "answer"
	case KindTaskFailed:
		return "task-failed"
	case KindHeartbeat:
		return "heartbeat"
	case KindProgress:
		return "progress"
	case KindRetiring:
		return "retiring"
	case KindStop:
		return "stop"
	case KindNoMain:
		return "no-main"
	case KindUsage:
		return "usage"
	case KindLog:
		return "log"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= KindInvocation && k <= MaxKind }

// FrameTooLargeError is returned for a frame whose declared payload is over
// the limit. The stream cannot be resynchronised after it.
type FrameTooLargeError struct {
	Size  uint64 // the declared payload size
	Limit int    // the limit in force
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("wire: frame of %d bytes is over the limit of %d bytes", e.Size, e.Limit)
}

// ErrBadKind is returned for a frame header whose kind is unknown, or
// whose length its kind does not allow (a no-main frame's payload is
// empty): what was read is not a frame (garbage on the pipe).
var ErrBadKind = sentinel.New("wire.ErrBadKind", "wire: bad frame header (not a frame: garbage on the pipe?)")

// AppendStop appends a stop frame to dst: a goodbye when goodbye is set
// (the parent has no more work for the child, and will close its pipes),
// else a plain stop (finish what you are doing). A goodbye's payload is
// one byte, 1; a plain stop's is empty.
func AppendStop(dst []byte, goodbye bool) []byte {
	if goodbye {
		return AppendFrame(dst, KindStop, []byte{1})
	}
	return AppendHeader(dst, KindStop, 0)
}

// IsGoodbye reports whether payload, a stop frame's, is a goodbye's.
func IsGoodbye(payload []byte) bool { return len(payload) == 1 && payload[0] == 1 }

// AppendHeader appends the header of a frame of kind k with a payload of n
// bytes to dst.
func AppendHeader(dst []byte, k Kind, n int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	return append(dst, byte(k))
}

// AppendFrame appends a whole frame to dst.
func AppendFrame(dst []byte, k Kind, payload []byte) []byte {
	return append(AppendHeader(dst, k, len(payload)), payload...)
}

// MaxNumberedHead is the most bytes that AppendNumberedHeader appends.
const MaxNumberedHead = HeaderSize + binary.MaxVarintLen64

// AppendNumberedHeader appends to dst the header of a numbered frame of
// kind k for invocation n (see [Kind.Numbered]), whose payload after the
// number is size bytes, and the number: what comes before that payload.
func AppendNumberedHeader(dst []byte, k Kind, n uint64, size int) []byte {
	dst = AppendHeader(dst, k, uvarintLen(n)+size)
	return binary.AppendUvarint(dst, n)
}

// AppendNumberedFrame appends a whole numbered frame of kind k for
// invocation n to dst.
func AppendNumberedFrame(dst []byte, k Kind, n uint64, payload []byte) []byte {
	return append(AppendNumberedHeader(dst, k, n, len(payload)), payload...)
}

// ErrBadNumber is returned by CutNumber for a numbered frame's payload
// that does not begin with an invocation's number.
var ErrBadNumber = sentinel.New("wire.ErrBadNumber", "wire: a numbered frame without a valid invocation number")

// CutNumber splits the payload of a numbered frame into the number of the
// invocation it belongs to and what follows, which aliases p. A number of
// 0 (no invocation has it), one longer than 64 bits, or one that p cuts
// off is ErrBadNumber.
func CutNumber(p []byte) (n uint64, rest []byte, err error) {
	n, size := binary.Uvarint(p)
	if size <= 0 || n == 0 {
		return 0, nil, fmt.Errorf("%w: payload begins % x", ErrBadNumber, p[:min(len(p), binary.MaxVarintLen64)])
	}
	return n, p[size:], nil
}

func uvarintLen(n uint64) int {
	size := 1
	for n >= 0x80 {
		n >>= 7
		size++
	}
	return size
}

// ParseHeader reads a header from h (at least HeaderSize bytes) and checks it
// against limit.
func ParseHeader(h []byte, limit int) (Kind, int, error) {
	n := binary.LittleEndian.Uint32(h)
	k := Kind(h[4])
	if !k.valid() {
		return 0, 0, fmt.Errorf("%w: unknown frame kind %d: header % x", ErrBadKind, uint8(k), h[:HeaderSize])
	}
	if k == KindNoMain && n != 0 {
		return 0, 0, fmt.Errorf("%w: a no-main frame of %d bytes (it has none): header % x", ErrBadKind, n, h[:HeaderSize])
	}
	if limit <= 0 {
		limit = DefaultMaxPayload
	}
	if uint64(n) > uint64(limit) {
		return 0, 0, &FrameTooLargeError{Size: uint64(n), Limit: limit}
	}
	return k, int(n), nil
}

// WriteFrame writes one frame to w, with one write for small frames.
func WriteFrame(w io.Writer, k Kind, payload []byte) error {
	if len(payload) <= smallFrame {
		// Sized to the frame: w is an interface, so the buffer escapes to
		// the heap, and a fixed 64 KiB array would be allocated and zeroed
		// for every frame, however small.
		_, err := w.Write(AppendFrame(make([]byte, 0, HeaderSize+len(payload)), k, payload))
		return err
	}
	var h [HeaderSize]byte
	return writeLarge(w, AppendHeader(h[:0], k, len(payload)), payload)
}

// WriteNumberedFrame writes one numbered frame of kind k for invocation n
// to w (see [Kind.Numbered]), with one write for small frames.
func WriteNumberedFrame(w io.Writer, k Kind, n uint64, payload []byte) error {
	if len(payload) <= smallFrame {
		_, err := w.Write(AppendNumberedFrame(make([]byte, 0, MaxNumberedHead+len(payload)), k, n, payload))
		return err
	}
	var h [MaxNumberedHead]byte
	return writeLarge(w, AppendNumberedHeader(h[:0], k, n, len(payload)), payload)
}

// smallFrame is the largest payload that WriteFrame copies, to write its
// frame in one write.
const smallFrame = 64 << 10

// writeLarge writes head, a frame's start, and then the rest of its
// payload.
func writeLarge(w io.Writer, head, payload []byte) error {
	if _, err := w.Write(head); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame from r, blocking. It returns io.EOF at a clean
// end (no byte of a new frame read), and io.ErrUnexpectedEOF when the stream
// ends inside a frame.
func ReadFrame(r io.Reader, limit int) (Kind, []byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	k, n, err := ParseHeader(h[:], limit)
	if err != nil {
		return 0, nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return k, p, nil
}

// Decoder takes bytes as they arrive, in pieces of any size, and gives back
// whole frames. The zero value is ready to use with [DefaultMaxPayload].
//
// A large payload is read straight into its own buffer: [Decoder.Buffer]
// hands out the place the next read should go. That buffer grows with the
// bytes that arrive, not with the size a header claims, so a header alone
// costs its reader little: it starts at no more than twice the buffer for
// small reads and grows by a factor of up to bigGrowth each time it is
// full, up to the payload's size. A 64 MiB answer is copied from the pipe
// once, and what came before the last growth (an eighth of it) once more.
type Decoder struct {
	// Limit is the largest payload accepted; 0 means DefaultMaxPayload.
	Limit int

	scratch []byte // small reads land here
	start   int    // first unconsumed byte in scratch
	end     int    // one past the last byte read into scratch

	big     []byte // payload of a frame larger than scratch, as far as it was read; cap: what is allocated
	bigKind Kind
	bigSize int // the payload's size, as its header says
}

// scratchSize is the size of the buffer small frames are read into.
const scratchSize = 64 << 10

// bigGrowth is the most by which the buffer of a large payload grows when
// it is full: the buffer is never more than bigGrowth times what has
// arrived (or its first size, at most twice scratch). A larger factor
// copies less of a large payload as it grows (about 1/(bigGrowth-1) of
// it), and lets a child that stops part-way make its parent allocate more.
const bigGrowth = 8

// Buffer returns where the next read should go. It is never empty.
func (d *Decoder) Buffer() []byte {
	if d.big != nil {
		if len(d.big) == cap(d.big) {
			d.grow()
		}
		return d.big[len(d.big):cap(d.big)]
	}
	if d.scratch == nil {
		d.scratch = make([]byte, scratchSize)
	}
	if d.start == d.end {
		d.start, d.end = 0, 0
	} else if d.end == len(d.scratch) {
		// Move the partial frame to the front to make room.
		d.end = copy(d.scratch, d.scratch[d.start:d.end])
		d.start = 0
	}
	return d.scratch[d.end:]
}

// grow gives the large payload being read a buffer up to bigGrowth times
// as large (see step).
func (d *Decoder) grow() {
	n, _ := step(d.bigSize, bigGrowth*cap(d.big))
	b := make([]byte, len(d.big), n)
	copy(b, d.big)
	d.big = b
}

// step returns the size of the buffer for a large payload of size bytes
// that may hold up to limit: the largest of size, size/bigGrowth,
// size/bigGrowth², ... (each rounded up) that is no more than limit, and
// the one before it in that list (size itself when there is none). The
// buffers a payload goes through are sizes from this list, so that the
// one before the last holds a bigGrowth-th of the payload: the last
// growth copies it, and a buffer just short of the payload's size would
// have it copied nearly whole.
func step(size, limit int) (n, prev int) {
	n, prev = size, size
	for n > limit {
		prev, n = n, (n+bigGrowth-1)/bigGrowth
	}
	return n, prev
}

// Recycle gives the decoder buf, which another decoder's Release gave up,
// for its small reads, so that it need not allocate and zero a buffer of
// its own. It reports whether the decoder took it: only a decoder that has
// no such buffer yet takes one, and only of the size it would make.
func (d *Decoder) Recycle(buf []byte) bool {
	if d.scratch != nil || len(buf) != scratchSize {
		return false
	}
	d.scratch, d.start, d.end = buf, 0, 0
	return true
}

// Release takes back the decoder's buffer for small reads, for another
// decoder's Recycle, and returns it; nil if it has none. Whatever the
// decoder held is dropped, an unfinished large payload too (payloads that
// Next returned stay valid). A decoder used after Release makes a new
// buffer.
func (d *Decoder) Release() []byte {
	buf := d.scratch
	d.scratch, d.start, d.end = nil, 0, 0
	d.big, d.bigSize = nil, 0
	return buf
}

// Advance records that n bytes were read into the slice Buffer returned.
func (d *Decoder) Advance(n int) {
	if d.big != nil {
		d.big = d.big[:len(d.big)+n]
		return
	}
	d.end += n
}

// Next returns the next whole frame, if there is one. The payload belongs to
// the caller, and the decoder keeps no reference to it. ok is false when
// more bytes are needed. After an error the stream is broken and Next
// keeps returning it.
func (d *Decoder) Next() (k Kind, payload []byte, ok bool, err error) {
	if d.big != nil {
		if len(d.big) < d.bigSize {
			return 0, nil, false, nil
		}
		k, payload = d.bigKind, d.big
		d.big, d.bigSize = nil, 0
		return k, payload, true, nil
	}
	avail := d.end - d.start
	if avail < HeaderSize {
		return 0, nil, false, nil
	}
	k, n, err := ParseHeader(d.scratch[d.start:d.end], d.Limit)
	if err != nil {
		return 0, nil, false, err
	}
	if avail-HeaderSize >= n {
		p := make([]byte, n)
		copy(p, d.scratch[d.start+HeaderSize:])
		d.start += HeaderSize + n
		return k, p, true, nil
	}
	if HeaderSize+n <= len(d.scratch) {
		return 0, nil, false, nil // it will fit: wait for the rest
	}
	// Too big for scratch: give it its own buffer, sized to what has come
	// rather than to what the header claims, and read into that.
	came := d.end - d.start - HeaderSize
	size, larger := step(n, 2*len(d.scratch))
	if size < came {
		size = larger // no more than bigGrowth times what came
	}
	d.big = append(make([]byte, 0, size), d.scratch[d.start+HeaderSize:d.end]...)
	d.bigKind, d.bigSize = k, n
	d.start, d.end = 0, 0
	return d.Next()
}

// Pending reports how many bytes of an unfinished frame the decoder holds.
// At the end of a stream it is the size of the truncated frame's start.
func (d *Decoder) Pending() int {
	if d.big != nil {
		return HeaderSize + len(d.big)
	}
	return d.end - d.start
}
