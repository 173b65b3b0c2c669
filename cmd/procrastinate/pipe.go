package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
)

// splitter cuts the input of --pipe into blocks: about --block bytes
// each, or -N records, cut at a record's boundary (after --recend, before
// --recstart), each with the --header before it.
type splitter struct {
	r        io.Reader
	block    int
	records  int // -N; 0 cuts by size
	recend   []byte
	recstart []byte
	// The header: a number of lines, or what a regular expression matches
	// at the start of the input.
	headerLines int
	headerRE    *regexp.Regexp
	header      []byte
	started     bool
	buf         []byte
	eof         bool
	warnings    []string // for the runner to print
}

// fill reads until the buffer holds n bytes or the input ended.
func (s *splitter) fill(n int) error { return s.read(n, false) }

// more reads what the input has now (one read), up to 64 KiB, so that a
// record that came is seen without waiting for more.
func (s *splitter) more() error { return s.read(len(s.buf)+64<<10, true) }

func (s *splitter) read(n int, once bool) error {
	for len(s.buf) < n && !s.eof {
		if cap(s.buf) < n {
			nb := make([]byte, len(s.buf), n)
			copy(nb, s.buf)
			s.buf = nb
		}
		k, err := s.r.Read(s.buf[len(s.buf):n])
		s.buf = s.buf[:len(s.buf)+k]
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			return fmt.Errorf("--pipe: cannot read the input: %w", err)
		}
		if once && k > 0 {
			break
		}
	}
	return nil
}

// split is the first record boundary in b after from, or -1.
func (s *splitter) split(b []byte, from int) int {
	sep := append(s.recend[:len(s.recend):len(s.recend)], s.recstart...)
	if len(sep) == 0 {
		return -1
	}
	for i := from; i <= len(b); {
		k := bytes.Index(b[i:], sep)
		if k < 0 {
			return -1
		}
		if p := i + k + len(s.recend); p > from {
			return p
		}
		i += k + 1
	}
	return -1
}

// lastSplit is the last record boundary in b after 0, or -1.
func (s *splitter) lastSplit(b []byte) int {
	sep := append(s.recend[:len(s.recend):len(s.recend)], s.recstart...)
	if len(sep) == 0 {
		return -1
	}
	for end := len(b); end > 0; {
		k := bytes.LastIndex(b[:end], sep)
		if k < 0 {
			return -1
		}
		if p := k + len(s.recend); p > 0 {
			return p
		}
		end = k + len(sep) - 1
	}
	return -1
}

// readHeader takes the header off the start of the input.
func (s *splitter) readHeader() error {
	switch {
	case s.headerLines > 0:
		pos := 0
		for n := 0; n < s.headerLines; {
			k := bytes.IndexByte(s.buf[pos:], '\n')
			if k >= 0 {
				pos += k + 1
				n++
				continue
			}
			if s.eof {
				pos = len(s.buf)
				break
			}
			if err := s.more(); err != nil {
				return err
			}
		}
		s.header, s.buf = bytes.Clone(s.buf[:pos]), s.buf[pos:]
	case s.headerRE != nil:
		if err := s.fill(max(s.block, 64<<10)); err != nil {
			return err
		}
		if loc := s.headerRE.FindIndex(s.buf); loc != nil {
			s.header, s.buf = bytes.Clone(s.buf[:loc[1]]), s.buf[loc[1]:]
		}
	}
	return nil
}

// next is the next block, with the header before it; io.EOF at the end.
func (s *splitter) next() ([]byte, error) {
	if !s.started {
		s.started = true
		if err := s.readHeader(); err != nil {
			return nil, err
		}
	}
	var n int
	var err error
	if s.records > 0 {
		n, err = s.byRecords()
	} else {
		n, err = s.bySize()
	}
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, io.EOF
	}
	b := make([]byte, 0, len(s.header)+n)
	b = append(append(b, s.header...), s.buf[:n]...)
	s.buf = append(s.buf[:0], s.buf[n:]...)
	return b, nil
}

// bySize is the length of the next block of about --block bytes: up to
// the last record boundary within --block bytes. A record longer than
// --block makes --block grow, as parallel does.
func (s *splitter) bySize() (int, error) {
	for {
		if err := s.fill(s.block); err != nil {
			return 0, err
		}
		if s.eof && len(s.buf) <= s.block {
			return len(s.buf), nil
		}
		if p := s.lastSplit(s.buf); p > 0 {
			return p, nil
		}
		grown := s.block + s.block/2 + 1
		s.warnings = append(s.warnings, fmt.Sprintf("a record was longer than %d bytes: --block is now %d", s.block, grown))
		s.block = grown
	}
}

// byRecords is the length of the next -N records.
func (s *splitter) byRecords() (int, error) {
	pos := 0
	for n := 0; n < s.records; {
		p := s.split(s.buf, pos)
		if p >= 0 {
			pos = p
			n++
			continue
		}
		if s.eof {
			return len(s.buf), nil
		}
		if err := s.more(); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

// feedItem is a block of --pipe, or a warning the splitter has for the
// user.
type feedItem struct {
	block []byte
	warn  string
}

// feed reads the blocks of --pipe in a goroutine of its own, so that the
// runner goes on while the input is slow to come.
type feed struct {
	items chan feedItem
	stop  chan struct{}
	err   error // set before items is closed
}

func startFeed(s *splitter) *feed {
	f := &feed{items: make(chan feedItem), stop: make(chan struct{})}
	go func() {
		defer close(f.items)
		for {
			b, err := s.next()
			for _, w := range s.warnings {
				select {
				case f.items <- feedItem{warn: w}:
				case <-f.stop:
					return
				}
			}
			s.warnings = nil
			if err != nil {
				if err != io.EOF {
					f.err = err
				}
				return
			}
			select {
			case f.items <- feedItem{block: b}:
			case <-f.stop:
				return
			}
		}
	}()
	return f
}

// blockFile is a block given to a job as a file (--cat) or a FIFO
// (--fifo), named by {}.
type blockFile struct {
	path  string
	wrote chan struct{} // --fifo: the writer is done
}

// newBlockFile puts block in a file of dir for job seq. A FIFO's writer
// opens it when the job does, and closes it once the block is written,
// so that the job reads the block to its end.
func newBlockFile(dir string, seq int, block []byte, fifo bool) (*blockFile, error) {
	f := &blockFile{path: filepath.Join(dir, strconv.Itoa(seq))}
	if !fifo {
		return f, os.WriteFile(f.path, block, 0o600)
	}
	if err := syscall.Mkfifo(f.path, 0o600); err != nil {
		return nil, fmt.Errorf("--fifo: cannot make the job's FIFO: %w", err)
	}
	f.wrote = make(chan struct{})
	go func() {
		defer close(f.wrote)
		w, err := os.OpenFile(f.path, os.O_WRONLY, 0) // until a reader opens it
		if err == nil {
			_, _ = w.Write(block)
			_ = w.Close()
		}
	}()
	return f, nil
}

// remove removes the file, once the job is done. A FIFO's writer that
// the job left waiting (it did not open the FIFO, or did not read it
// whole) is let go: the runner opens the FIFO itself, as a reader and a
// writer, so that the writer's open returns whenever it comes, and reads
// what is written until the writer is done.
func (f *blockFile) remove() {
	if f.wrote != nil {
		select {
		case <-f.wrote:
		default:
			if rw, err := os.OpenFile(f.path, os.O_RDWR, 0); err == nil {
				drained := make(chan struct{})
				go func() {
					defer close(drained)
					_, _ = io.Copy(io.Discard, rw) // ends when rw is closed
				}()
				<-f.wrote
				_ = rw.Close()
				<-drained
			}
		}
	}
	_ = os.Remove(f.path)
}

// parseHeader reads --header: ":" is the first line, a number that many
// lines, anything else a regular expression matched at the start.
func parseHeader(v string) (int, *regexp.Regexp, error) {
	if v == ":" {
		return 1, nil, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n, nil, nil
	}
	re, err := regexp.Compile(`^(?:` + v + `)`)
	if err != nil {
		return 0, nil, fmt.Errorf("not a number of lines, nor a regular expression: %v", err)
	}
	return 0, re, nil
}

// parseUnits reads a number with parallel's unit prefixes: K M G T P are
// powers of 1024, k m g t p powers of 1000.
func parseUnits(v string) (int, error) {
	mult := 1
	if v != "" {
		if i := bytes.IndexByte([]byte("KMGTP"), v[len(v)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
		} else if i := bytes.IndexByte([]byte("kmgtp"), v[len(v)-1]); i >= 0 {
			mult = 1
			for ; i >= 0; i-- {
				mult *= 1000
			}
		}
		if mult > 1 {
			v = v[:len(v)-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 1 {
		return 0, fmt.Errorf("want a size of 1 or more, with K, M, G (1024s) or k, m, g (1000s)")
	}
	return int(f * float64(mult)), nil
}
