package procman

import (
	"fmt"
	"io"
)

// fileFrame is a file frame being read (see frameFile): the file that
// came with it, what the frame stands for, and the payload as far as it
// was read from the file.
type fileFrame struct {
	fd       int
	class    frameClass // reply or note
	numbered []byte     // the invocation's number and the caller's kind, for checkNumber
	size     int
	buf      []byte // the payload read so far; cap: what is allocated
}

// pending reports how many bytes of an unfinished frame p holds.
func (p *Process) pending() int {
	n := p.dec.Pending()
	if f := p.file; f != nil {
		n += headerSize + len(f.buf)
	}
	return n
}

// fileFrame begins a file frame: it checks the frame it stands for
// against the payload limit, as a frame on the pipe is checked, and takes
// the file that came with it. A frame that breaks the protocol is a
// protocol error.
func (p *Process) fileFrame(payload []byte) {
	c, size, numbered, err := cutFile(payload)
	if err != nil {
		p.protocolError(fmt.Errorf("%v frame: %w", frameFile, err))
		return
	}
	limit := p.dec.Limit
	if limit <= 0 {
		limit = defaultMaxPayload
	}
	if total := uint64(len(numbered)) + size; size > uint64(limit) || total > uint64(limit) {
		p.protocolError(&frameTooLargeError{Size: total, Limit: limit})
		return
	}
	fd, err := p.takeFile()
	if err != nil {
		p.protocolError(fmt.Errorf("%v frame of %d bytes: %w", c, size, err))
		return
	}
	p.file = &fileFrame{fd: fd, class: c, numbered: numbered, size: int(size)}
}

// filePart reads the part of a file frame's payload that a file-part
// frame says the file now holds. When that completes the payload, it
// returns the class of the frame it stands for, the caller's kind, the
// payload and true if it is to be delivered (see checkNumber); n is how
// many bytes it read.
func (p *Process) filePart(payload []byte) (c frameClass, kind Kind, data []byte, n int, ok bool) {
	f := p.file
	end, err := cutFilePart(payload)
	switch {
	case err != nil:
		p.protocolError(err)
		return
	case f == nil:
		p.protocolError(fmt.Errorf("a %v frame without a file frame", frameFilePart))
		return
	case end == 0:
		p.dropFile() // the frame follows on the pipe
		return
	case end <= uint64(len(f.buf)) || end > uint64(f.size):
		p.protocolError(fmt.Errorf("a %v frame says its file holds %d bytes of %d, after %d", frameFilePart, end, f.size, len(f.buf)))
		return
	}
	if int(end) > cap(f.buf) {
		// Grown with what has come, as a large frame's buffer is: no more
		// than bigGrowth times what the file is said to hold.
		size, _ := step(f.size, bigGrowth*int(end))
		f.buf = append(make([]byte, 0, size), f.buf...)
	}
	got := len(f.buf)
	err = preadFull(f.fd, f.buf[got:end], int64(got))
	if err != nil {
		p.protocolError(fmt.Errorf("the file of a %v frame of %d bytes: %w", f.class, f.size, err))
		return
	}
	f.buf = f.buf[:end]
	n = int(end) - got
	if len(f.buf) < f.size {
		return 0, 0, nil, n, false
	}
	c, data, numbered := f.class, f.buf, f.numbered
	p.dropFile()
	kind, _, ok = p.checkNumber(c, numbered)
	return c, kind, data, n, ok
}

// dropFile closes the file of the file frame being read, if one is, and
// forgets the frame.
func (p *Process) dropFile() {
	if p.file != nil {
		closeFD(p.file.fd)
		p.file = nil
	}
}

// errFileEnded is preadFull's error for a file that ends before what it
// was said to hold.
var errFileEnded = fmt.Errorf("the file ended before what its frame said it held: %w", io.ErrUnexpectedEOF)
