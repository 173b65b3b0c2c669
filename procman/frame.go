package procman

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// headerSize is the size of a frame's header: the payload's length
// (4 bytes, little-endian) and the frame's class (1 byte).
const headerSize = 5

// defaultMaxPayload is the payload size limit used where none is set: 1 GiB.
const defaultMaxPayload = 1 << 30

// frameClass says what a frame is to the manager. The caller's frameClass of a
// reply or a note is not in the header: it is the byte after the
// invocation's number, at the start of the payload.
type frameClass uint8

// The classes of frame. Parent to child: invocation (on the invocation
// pipe), stop (on the control pipe). Child to parent: reply, note,
// no-main.
const (
	frameInvocation frameClass = 1 // the caller's payload
	frameReply      frameClass = 2 // numbered: ends the oldest invocation in flight
	frameNote       frameClass = 3 // numbered: about the invocation that runs
	frameStop       frameClass = 4 // finish; a goodbye's payload is one byte, 1; a withdrawal's is 2 and a number
	frameNoMain     frameClass = 5 // the child never called Serve; empty
	frameFile       frameClass = 6 // a reply or a note whose payload comes in a file: see appendFileFrame
	frameFilePart   frameClass = 7 // how much of a file frame's payload its file holds

	// maxFrameClass is the last class: a header's class byte of 0, or
	// above it, says that what was read is not a frame.
	maxFrameClass = frameFilePart
)

// numbered reports whether a frame of class c belongs to one invocation
// and says which: a reply or a note. Its payload begins with the
// invocation's number, a uvarint, and the caller's frameClass, one byte (see
// appendNumberedHeader and cutNumber). A parent numbers the invocations
// it sends to one child from 1, in the order it sends them.
func (c frameClass) numbered() bool { return c == frameReply || c == frameNote }

func (c frameClass) String() string {
	switch c {
	case frameInvocation:
		return "invocation"
	case frameReply:
		return "reply"
	case frameNote:
		return "note"
	case frameStop:
		return "stop"
	case frameNoMain:
		return "no-main"
	case frameFile:
		return "file"
	case frameFilePart:
		return "file-part"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

func (c frameClass) valid() bool { return c >= frameInvocation && c <= maxFrameClass }

// frameTooLargeError is returned for a frame whose declared payload is over
// the limit. The stream cannot be resynchronised after it.
type frameTooLargeError struct {
	Size  uint64 // the declared payload size
	Limit int    // the limit in force
}

func (e *frameTooLargeError) Error() string {
	return fmt.Sprintf("procman: frame of %d bytes is over the limit of %d bytes", e.Size, e.Limit)
}

// errNotAFrame is returned for a frame header whose kind is unknown, or
// whose length its kind does not allow (a no-main frame's payload is
// empty): what was read is not a frame (garbage on the pipe).
var errNotAFrame = errors.New("procman: bad frame header (not a frame: garbage on the pipe?)")

// appendStop appends a stop frame to dst: a goodbye when goodbye is set
// (the parent has no more work for the child, and will close its pipes),
// else a plain stop (finish what you are doing). A goodbye's payload is
// one byte, 1; a plain stop's is empty.
func appendStop(dst []byte, goodbye bool) []byte {
	if goodbye {
		return appendFrame(dst, frameStop, []byte{1})
	}
	return appendHeader(dst, frameStop, 0)
}

// isGoodbye reports whether payload, a stop frame's, is a goodbye's.
func isGoodbye(payload []byte) bool { return len(payload) == 1 && payload[0] == 1 }

// appendWithdraw appends to dst a stop frame that withdraws invocation n
// alone: its payload is 2, then n as a uvarint.
func appendWithdraw(dst []byte, n uint64) []byte {
	var p [1 + binary.MaxVarintLen64]byte
	p[0] = 2
	k := 1 + binary.PutUvarint(p[1:], n)
	return appendFrame(dst, frameStop, p[:k])
}

// withdrawn returns the invocation that payload, a stop frame's, withdraws,
// if it withdraws one.
func withdrawn(payload []byte) (n uint64, ok bool) {
	if len(payload) < 2 || payload[0] != 2 {
		return 0, false
	}
	n, k := binary.Uvarint(payload[1:])
	return n, k == len(payload)-1 && n > 0
}

// appendHeader appends the header of a frame of kind k with a payload of n
// bytes to dst.
func appendHeader(dst []byte, k frameClass, n int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	return append(dst, byte(k))
}

// appendFrame appends a whole frame to dst.
func appendFrame(dst []byte, k frameClass, payload []byte) []byte {
	return append(appendHeader(dst, k, len(payload)), payload...)
}

// maxNumberedHead is the most bytes that appendNumberedHeader appends.
const maxNumberedHead = headerSize + binary.MaxVarintLen64 + 1

// appendNumberedHeader appends to dst the header of a numbered frame of
// class c for invocation n with the caller's kind (see
// frameClass.numbered), whose payload after the number and the kind is
// size bytes, then the number and the kind: what comes before that
// payload.
func appendNumberedHeader(dst []byte, c frameClass, n uint64, kind Kind, size int) []byte {
	dst = appendHeader(dst, c, uvarintLen(n)+1+size)
	dst = binary.AppendUvarint(dst, n)
	return append(dst, byte(kind))
}

// appendNumberedFrame appends a whole numbered frame to dst.
func appendNumberedFrame(dst []byte, c frameClass, n uint64, kind Kind, payload []byte) []byte {
	return append(appendNumberedHeader(dst, c, n, kind, len(payload)), payload...)
}

// A payload of fileMin bytes or more may go to the parent in a file, on
// backends that give their children a file socket. The child makes a file
// that no name reaches, sends its descriptor on the file socket, and then
// writes a file frame: the class of the frame it stands for (reply or
// note), the payload's size (a uvarint), the invocation's number and the
// caller's kind as in a numbered frame. It then writes the payload to the
// file a part at a time, each part followed by a file-part frame whose
// payload (a uvarint) says how far the file holds it, so that the parent
// reads a part while the child writes the next. The frame is whole once a
// file-part frame reaches the payload's size. Until then it is a frame
// begun and not finished: a child that dies, or stalls, while it writes
// the file is treated as one that does so while it writes to the pipe. A
// file-part frame that says 0 gives up: the frame follows, whole, on the
// pipe.
//
// maxFileHead is the most bytes that appendFileFrame appends.
const maxFileHead = headerSize + 1 + 2*binary.MaxVarintLen64 + 1

// fileChunk is the size of the parts a file's payload is written in.
const fileChunk = 4 << 20

// appendFileFrame appends to dst a file frame for a numbered frame of
// class c for invocation n with the caller's kind and a payload of size
// bytes.
func appendFileFrame(dst []byte, c frameClass, n uint64, kind Kind, size int) []byte {
	dst = appendHeader(dst, frameFile, 1+uvarintLen(uint64(size))+uvarintLen(n)+1)
	dst = append(dst, byte(c))
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = binary.AppendUvarint(dst, n)
	return append(dst, byte(kind))
}

// appendFilePart appends to dst a file-part frame that says the file holds
// the payload up to end (0: the child gave up).
func appendFilePart(dst []byte, end int) []byte {
	var p [binary.MaxVarintLen64]byte
	return appendFrame(dst, frameFilePart, binary.AppendUvarint(p[:0], uint64(end)))
}

// cutFile splits a file frame's payload into the class of the frame it
// stands for, the payload's size, and what a numbered frame's payload
// begins with (the invocation's number and the caller's kind, for
// cutNumber).
func cutFile(p []byte) (c frameClass, size uint64, numbered []byte, err error) {
	if len(p) < 1 {
		return 0, 0, nil, fmt.Errorf("%w: an empty file frame", errNotAFrame)
	}
	c = frameClass(p[0])
	size, k := binary.Uvarint(p[1:])
	switch {
	case !c.numbered():
		return 0, 0, nil, fmt.Errorf("%w: a file frame for a %v frame", errNotAFrame, c)
	case k <= 0 || 1+k >= len(p):
		return 0, 0, nil, fmt.Errorf("%w: a file frame without a valid size: payload % x", errNotAFrame, p)
	}
	return c, size, p[1+k:], nil
}

// cutFilePart returns how far a file-part frame's payload says the file
// holds its payload.
func cutFilePart(p []byte) (uint64, error) {
	end, k := binary.Uvarint(p)
	if k <= 0 || k != len(p) {
		return 0, fmt.Errorf("%w: a file-part frame whose payload is % x", errNotAFrame, p)
	}
	return end, nil
}

// errBadNumber is the error of cutNumber for a numbered frame's payload
// that does not begin with an invocation's number and a kind.
var errBadNumber = errors.New("procman: a numbered frame without a valid invocation number and kind")

// cutNumber splits the payload of a numbered frame into the number of the
// invocation it belongs to, the caller's kind, and what follows, which
// aliases p. A number of 0 (no invocation has it), one longer than 64
// bits, or a payload that ends before the kind is errBadNumber.
func cutNumber(p []byte) (n uint64, kind Kind, rest []byte, err error) {
	n, size := binary.Uvarint(p)
	if size <= 0 || n == 0 || size >= len(p) {
		return 0, 0, nil, fmt.Errorf("%w: payload begins % x", errBadNumber, p[:min(len(p), binary.MaxVarintLen64)])
	}
	return n, Kind(p[size]), p[size+1:], nil
}

func uvarintLen(n uint64) int {
	size := 1
	for n >= 0x80 {
		n >>= 7
		size++
	}
	return size
}

// parseHeader reads a header from h (at least headerSize bytes) and checks it
// against limit.
func parseHeader(h []byte, limit int) (frameClass, int, error) {
	n := binary.LittleEndian.Uint32(h)
	k := frameClass(h[4])
	if !k.valid() {
		return 0, 0, fmt.Errorf("%w: unknown frame kind %d: header % x", errNotAFrame, uint8(k), h[:headerSize])
	}
	if k == frameNoMain && n != 0 {
		return 0, 0, fmt.Errorf("%w: a no-main frame of %d bytes (it has none): header % x", errNotAFrame, n, h[:headerSize])
	}
	if limit <= 0 {
		limit = defaultMaxPayload
	}
	if uint64(n) > uint64(limit) {
		return 0, 0, &frameTooLargeError{Size: uint64(n), Limit: limit}
	}
	return k, int(n), nil
}

// writeFrame writes one frame to w, with one write for small frames.
func writeFrame(w io.Writer, k frameClass, payload []byte) error {
	if len(payload) <= smallFrame {
		// Sized to the frame: w is an interface, so the buffer escapes to
		// the heap, and a fixed 64 KiB array would be allocated and zeroed
		// for every frame, however small.
		_, err := w.Write(appendFrame(make([]byte, 0, headerSize+len(payload)), k, payload))
		return err
	}
	var h [headerSize]byte
	return writeLarge(w, appendHeader(h[:0], k, len(payload)), payload)
}

// writeNumberedFrame writes one numbered frame to w (see
// appendNumberedHeader), with one write for small frames.
func writeNumberedFrame(w io.Writer, c frameClass, n uint64, kind Kind, payload []byte) error {
	if len(payload) <= smallFrame {
		_, err := w.Write(appendNumberedFrame(make([]byte, 0, maxNumberedHead+len(payload)), c, n, kind, payload))
		return err
	}
	var h [maxNumberedHead]byte
	return writeLarge(w, appendNumberedHeader(h[:0], c, n, kind, len(payload)), payload)
}

// smallFrame is the largest payload that writeFrame copies, to write its
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

// readFrame reads one frame from r, blocking. It returns io.EOF at a clean
// end (no byte of a new frame read), and io.ErrUnexpectedEOF when the stream
// ends inside a frame.
func readFrame(r io.Reader, limit int) (frameClass, []byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	k, n, err := parseHeader(h[:], limit)
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

// frameDecoder takes bytes as they arrive, in pieces of any size, and gives back
// whole frames. The zero value is ready to use with [defaultMaxPayload].
//
// A large payload is read straight into its own buffer: [frameDecoder.Buffer]
// hands out the place the next read should go. That buffer grows with the
// bytes that arrive, not with the size a header claims, so a header alone
// costs its reader little: it starts at no more than twice the buffer for
// small reads and grows by a factor of up to bigGrowth each time it is
// full, up to the payload's size. A 64 MiB answer is copied from the pipe
// once, and what came before the last growth (an eighth of it) once more.
type frameDecoder struct {
	// Limit is the largest payload accepted; 0 means defaultMaxPayload.
	Limit int

	scratch []byte // small reads land here
	start   int    // first unconsumed byte in scratch
	end     int    // one past the last byte read into scratch

	big     []byte // payload of a frame larger than scratch, as far as it was read; cap: what is allocated
	bigKind frameClass
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
func (d *frameDecoder) Buffer() []byte {
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
func (d *frameDecoder) grow() {
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

// Advance records that n bytes were read into the slice Buffer returned.
func (d *frameDecoder) Advance(n int) {
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
func (d *frameDecoder) Next() (k frameClass, payload []byte, ok bool, err error) {
	if d.big != nil {
		if len(d.big) < d.bigSize {
			return 0, nil, false, nil
		}
		k, payload = d.bigKind, d.big
		d.big, d.bigSize = nil, 0
		return k, payload, true, nil
	}
	avail := d.end - d.start
	if avail < headerSize {
		return 0, nil, false, nil
	}
	k, n, err := parseHeader(d.scratch[d.start:d.end], d.Limit)
	if err != nil {
		return 0, nil, false, err
	}
	if avail-headerSize >= n {
		p := make([]byte, n)
		copy(p, d.scratch[d.start+headerSize:])
		d.start += headerSize + n
		return k, p, true, nil
	}
	if headerSize+n <= len(d.scratch) {
		return 0, nil, false, nil // it will fit: wait for the rest
	}
	// Too big for scratch: give it its own buffer, sized to what has come
	// rather than to what the header claims, and read into that.
	came := d.end - d.start - headerSize
	size, larger := step(n, 2*len(d.scratch))
	if size < came {
		size = larger // no more than bigGrowth times what came
	}
	d.big = append(make([]byte, 0, size), d.scratch[d.start+headerSize:d.end]...)
	d.bigKind, d.bigSize = k, n
	d.start, d.end = 0, 0
	return d.Next()
}

// Pending reports how many bytes of an unfinished frame the decoder holds.
// At the end of a stream it is the size of the truncated frame's start.
func (d *frameDecoder) Pending() int {
	if d.big != nil {
		return headerSize + len(d.big)
	}
	return d.end - d.start
}
