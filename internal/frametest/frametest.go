// Package frametest writes and reads the process manager's frames byte by
// byte, as a hostile child writes them and as the manager reads them, for
// tests outside package procman, which keeps its framing unexported.
// procman's own tests check that the two agree.
//
// A frame is the payload's length (4 bytes, little-endian), the frame's
// class (1 byte), and the payload. A reply's or a note's payload begins
// with the number of the invocation it belongs to (a uvarint) and the
// caller's kind (1 byte).
package frametest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/procrastinate-go/procrastinate/procman"
)

// The classes of frame.
const (
	Invocation byte = 1
	Reply      byte = 2
	Note       byte = 3
	Stop       byte = 4
	NoMain     byte = 5
	File       byte = 6        // a reply or a note whose payload comes in a file
	FilePart   byte = 7        // how much of a file frame's payload its file holds
	MaxClass        = FilePart // a class byte of 0 or above it is not a frame
)

// Header appends the header of a frame of class c with a payload of n
// bytes to dst.
func Header(dst []byte, c byte, n int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	return append(dst, c)
}

// Frame appends a whole frame to dst.
func Frame(dst []byte, c byte, payload []byte) []byte {
	return append(Header(dst, c, len(payload)), payload...)
}

// Numbered appends a whole reply or note (class c) for invocation n with
// kind to dst.
func Numbered(dst []byte, c byte, n uint64, kind procman.Kind, payload []byte) []byte {
	body := binary.AppendUvarint(nil, n)
	body = append(body, byte(kind))
	return Frame(dst, c, append(body, payload...))
}

// ErrNotAFrame is Read's error for a header that is not a frame's.
var ErrNotAFrame = errors.New("frametest: not a frame")

// Read reads one frame from r as the manager does, with payloads of at
// most limit bytes: io.EOF at a clean end, io.ErrUnexpectedEOF inside a
// frame, ErrNotAFrame for a bad header, an error for one over the limit.
func Read(r io.Reader, limit int) (c byte, payload []byte, err error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n, c := binary.LittleEndian.Uint32(h[:]), h[4]
	if c == 0 || c > MaxClass || (c == NoMain && n != 0) {
		return 0, nil, ErrNotAFrame
	}
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("frametest: a frame of %d bytes is over the limit of %d", n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return c, p, nil
}

// CutNumber splits a reply's or a note's payload into its invocation's
// number, its kind and the rest; ok is false when it has no valid number
// and kind.
func CutNumber(p []byte) (n uint64, kind procman.Kind, rest []byte, ok bool) {
	n, size := binary.Uvarint(p)
	if size <= 0 || n == 0 || size >= len(p) {
		return 0, 0, nil, false
	}
	return n, procman.Kind(p[size]), p[size+1:], true
}

// FileFrame appends to dst a file frame for a reply or a note (class c)
// for invocation n with kind and a payload of size bytes: the class, the
// size (a uvarint), the number (a uvarint) and the kind. Its payload is to
// come in a file, which no test child outside procman sends: the manager
// takes any file frame from such a child for a protocol error.
func FileFrame(dst []byte, c byte, n uint64, kind procman.Kind, size int) []byte {
	body := append([]byte{c}, binary.AppendUvarint(nil, uint64(size))...)
	body = binary.AppendUvarint(body, n)
	body = append(body, byte(kind))
	return Frame(dst, File, body)
}

// Part appends to dst a file-part frame that says a file frame's file
// holds its payload up to end.
func Part(dst []byte, end int) []byte {
	return Frame(dst, FilePart, binary.AppendUvarint(nil, uint64(end)))
}
