package command

import (
	"io"
	"os"
	"sync"
	"time"
)

// keeper keeps what Output asks of one stream; its Write never fails, so
// that the command is never left writing to a pipe nobody reads.
type keeper struct {
	out     Output
	buf     []byte
	dropped int64
	file    *os.File
	fileErr error
}

func newKeeper(o Output) *keeper { return &keeper{out: o} }

func (k *keeper) size() int {
	if k.out.Size > 0 {
		return k.out.Size
	}
	if k.out.Mode == Tail {
		return defaultStderrTail
	}
	return 64 << 10
}

func (k *keeper) Write(p []byte) (int, error) {
	switch k.out.Mode {
	case Tail:
		n := k.size()
		k.buf = append(k.buf, p...)
		if len(k.buf) > 2*n {
			cut := len(k.buf) - n
			k.dropped += int64(cut)
			k.buf = append(k.buf[:0], k.buf[cut:]...)
		}
	case All:
		k.buf = append(k.buf, p...)
	case Spool:
		if k.file == nil && k.fileErr == nil && len(k.buf)+len(p) > k.size() {
			k.file, k.fileErr = os.CreateTemp(k.out.Dir, "procrastinate-command-*")
			if k.file != nil {
				_, k.fileErr = k.file.Write(k.buf)
			}
		}
		if k.file != nil && k.fileErr == nil {
			_, k.fileErr = k.file.Write(p)
		}
		if room := k.size() - len(k.buf); room > 0 {
			k.buf = append(k.buf, p[:min(room, len(p))]...)
		}
	}
	return len(p), nil
}

// finish returns what was kept: the bytes, the spool file's name, and the
// bytes a tail left out.
func (k *keeper) finish() ([]byte, string, int64, error) {
	if k.out.Mode == Tail && len(k.buf) > k.size() {
		cut := len(k.buf) - k.size()
		k.dropped += int64(cut)
		k.buf = k.buf[cut:]
	}
	if k.file == nil {
		return k.buf, "", k.dropped, k.fileErr
	}
	name := k.file.Name()
	if err := k.file.Close(); err != nil && k.fileErr == nil {
		k.fileErr = err
	}
	return k.buf, name, k.dropped, k.fileErr
}

// stream is one of the command's standard streams as the child sets it up.
type stream struct {
	childFd uintptr  // the fd the command gets
	child   *os.File // the end given to the command, closed once it started; nil when not ours
	parent  *os.File // our end of the pipe; nil when there is none
	keep    *keeper  // for stdout and stderr
	done    sync.WaitGroup
}

var (
	devNullOnce sync.Once
	devNull     *os.File
	devNullErr  error
)

// nullFile returns /dev/null, opened once for the child's life.
func nullFile() (*os.File, error) {
	devNullOnce.Do(func() { devNull, devNullErr = os.OpenFile(os.DevNull, os.O_RDWR, 0) })
	return devNull, devNullErr
}

// outputStream sets up stdout (fd 1) or stderr (fd 2) for o.
func outputStream(o Output, fd int) (*stream, error) {
	if o.Mode == Default {
		if fd == 1 {
			o.Mode = Discard
		} else {
			o.Mode, o.Size = Tail, max(o.Size, 0)
		}
	}
	switch o.Mode {
	case Discard:
		f, err := nullFile()
		if err != nil {
			return nil, err
		}
		return &stream{childFd: f.Fd()}, nil
	case Inherit:
		return &stream{childFd: uintptr(fd)}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s := &stream{childFd: w.Fd(), child: w, parent: r, keep: newKeeper(o)}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		_, _ = io.Copy(s.keep, r)
	}()
	return s, nil
}

// inputStream sets up stdin for data: /dev/null when nil.
func inputStream(data []byte) (*stream, error) {
	if data == nil {
		f, err := nullFile()
		if err != nil {
			return nil, err
		}
		return &stream{childFd: f.Fd()}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s := &stream{childFd: r.Fd(), child: r, parent: w}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		_, _ = w.Write(data) // EPIPE when the command does not read it all
		_ = w.Close()        // the command's EOF
	}()
	return s, nil
}

// started closes the command's end of the pipe in this process.
func (s *stream) started() {
	if s.child != nil {
		_ = s.child.Close()
		s.child = nil
	}
}

// wait waits for the copy to end (every other end of the pipe is
// closed) and closes ours. A process that escaped the clean-up (it left
// the command's group and dropped its environment) may hold the other
// end for ever: after grace, ours is closed, which ends the copy.
func (s *stream) wait(grace time.Duration) {
	s.started()
	if s.parent == nil {
		return
	}
	cut := time.AfterFunc(grace, func() { _ = s.parent.Close() })
	s.done.Wait()
	cut.Stop()
	_ = s.parent.Close()
}
