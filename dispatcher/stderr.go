package dispatcher

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procrastinate-go/procrastinate/procman"
)

// The bounds of the children's stderr on its way to the dispatcher's
// writer.
const (
	// stderrQueue is the most that waits for the writer; what does not
	// fit is dropped.
	stderrQueue = 256 << 10
	// stderrLineMax is the longest line kept whole; a longer one is
	// passed on in pieces of this size, each a line of its own.
	stderrLineMax = 8 << 10
	// stderrFlushWait is how long the end of a dispatcher waits for the
	// writer to take what is queued, and then for a write cut short by a
	// deadline to return.
	stderrFlushWait = time.Second
	// stderrLogEvery is how often, at most, the log says that stderr
	// was dropped.
	stderrLogEvery = 10 * time.Second
)

// stderrSink passes the children's stderr on to the dispatcher's writer
// (WithStderr) from a goroutine of its own, so that a writer that blocks
// holds up nothing else: the manager goroutine only queues lines
// (putLocked), and drops them when the queue is full. What is dropped is
// counted (in bytes of the stream: the lines with their prefixes),
// logged, and said in the stream before the next line that is not.
type stderrSink struct {
	w       io.Writer // the writer, or a copy of it that takes deadlines (see interruptible)
	release func()    // releases that copy, once the writer goroutine has ended
	log     procman.Logger
	dropped atomic.Int64 // bytes dropped, in all

	mu     sync.Mutex
	queue  []byte // whole lines, waiting for the writer
	unsaid int64  // bytes dropped since the stream last said so
	closed bool   // the sink takes no more

	wake chan struct{} // one token: the queue has something
	quit chan struct{} // closed by close
	done chan struct{} // closed when the writer goroutine has ended
}

func newStderrSink(w io.Writer, log procman.Logger) *stderrSink {
	w, release := interruptible(w)
	s := &stderrSink{
		w: w, log: log, release: release,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.run()
	return s
}

// putLocked queues prefix, line and a newline, or drops them when they do
// not fit. s.mu is held.
func (s *stderrSink) putLocked(prefix, line []byte) {
	need := len(prefix) + len(line) + 1
	if s.closed || len(s.queue)+need > stderrQueue {
		s.dropLocked(need)
		return
	}
	if s.unsaid > 0 {
		notice := dropNotice(s.unsaid)
		if len(s.queue)+len(notice)+need > stderrQueue {
			s.dropLocked(need)
			return
		}
		s.queue = append(s.queue, notice...)
		s.unsaid = 0
	}
	s.queue = append(s.queue, prefix...)
	s.queue = append(s.queue, line...)
	s.queue = append(s.queue, '\n')
}

func (s *stderrSink) dropLocked(n int) {
	s.unsaid += int64(n)
	s.dropped.Add(int64(n))
}

// signal wakes the writer goroutine; it never blocks.
func (s *stderrSink) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func dropNotice(n int64) []byte {
	return fmt.Appendf(nil, "procrastinate: %d bytes of children's stderr dropped: the writer did not take them in time\n", n)
}

// run is the writer goroutine: it writes what is queued, and ends once
// close was called and the queue is empty. It logs what was dropped at
// most once every stderrLogEvery, and at its end.
func (s *stderrSink) run() {
	defer close(s.done)
	defer s.release()
	var buf []byte
	var logged int64
	var loggedAt time.Time
	failed := false
	for {
		select {
		case <-s.wake:
		case <-s.quit:
		}
		s.mu.Lock()
		buf, s.queue = s.queue, buf[:0]
		s.mu.Unlock()
		if len(buf) > 0 {
			n, err := s.w.Write(buf)
			if err != nil {
				s.mu.Lock()
				s.dropLocked(len(buf) - n)
				s.mu.Unlock()
				if !failed {
					failed = true
					s.log.Warn("writing children's stderr failed; what could not be written is dropped", "error", err)
				}
			}
		}
		ending := false
		select {
		case <-s.quit:
			s.mu.Lock()
			ending = len(s.queue) == 0
			s.mu.Unlock()
		default:
		}
		if n := s.dropped.Load(); n > logged && (ending || time.Since(loggedAt) >= stderrLogEvery) {
			s.log.Warn("children's stderr dropped: the writer did not take it in time", "bytes", n-logged, "total", n)
			logged, loggedAt = n, time.Now()
		}
		if ending {
			return
		}
	}
}

// close ends the writer goroutine. It waits up to stderrFlushWait for the
// writer to take what is queued; then it drops the rest, cuts a write in
// progress short where the writer has SetWriteDeadline (an *os.File pipe,
// a net.Conn: it gets a deadline in the past, and no deadline once the
// write has returned), and waits up to stderrFlushWait again. A writer
// that blocks and has no deadline keeps the goroutine in its Write until
// the write returns; close does not wait for that.
func (s *stderrSink) close() {
	s.mu.Lock()
	if s.unsaid > 0 && len(s.queue)+len(dropNotice(s.unsaid)) <= stderrQueue {
		s.queue = append(s.queue, dropNotice(s.unsaid)...)
		s.unsaid = 0
	}
	s.mu.Unlock()
	close(s.quit)
	t := time.NewTimer(stderrFlushWait)
	defer t.Stop()
	select {
	case <-s.done:
		return
	case <-t.C:
	}
	s.mu.Lock()
	s.closed = true
	s.dropLocked(len(s.queue))
	s.queue = nil
	s.mu.Unlock()
	if dl, ok := s.w.(interface{ SetWriteDeadline(time.Time) error }); ok && dl.SetWriteDeadline(time.Unix(1, 0)) == nil {
		t.Reset(stderrFlushWait)
		select {
		case <-s.done:
		case <-t.C:
		}
		_ = dl.SetWriteDeadline(time.Time{})
	}
	s.log.Warn("the children's stderr writer blocked at the end; the rest was dropped", "total dropped", s.dropped.Load())
}

// childStderr is where the process manager writes one child's captured
// stderr (procman.Spec.StderrCopy), on the manager goroutine. It never
// blocks: it cuts the stream into lines, keeps the cause of a crash
// (crashScan), and queues each line for the dispatcher's writer with a
// prefix that names the child, "[task pid] ". A line that the child has
// not ended yet waits here, up to stderrLineMax bytes, so that another
// child's output never cuts it; end passes it on.
type childStderr struct {
	c       *child
	sink    *stderrSink // nil: the lines go nowhere
	partial []byte      // the line begun and not ended
	crash   crashScan

	prefixTask string // the task the prefix names
	prefixPid  int
	prefix     []byte
}

// Write implements io.Writer. It takes all of p and returns no error.
func (w *childStderr) Write(p []byte) (int, error) {
	n := len(p)
	w.setPrefix()
	if w.sink != nil {
		w.sink.mu.Lock()
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if len(w.partial) == 0 && i >= 0 && i <= stderrLineMax {
			w.emit(p[:i])
			p = p[i+1:]
			continue
		}
		end := i
		if i < 0 {
			end = len(p)
		}
		take := min(end, stderrLineMax-len(w.partial))
		w.partial = append(w.partial, p[:take]...)
		p = p[take:]
		if take == end && i >= 0 {
			p = p[1:]
			w.emit(w.partial)
			w.partial = w.partial[:0]
		} else if len(w.partial) == stderrLineMax {
			w.emit(w.partial)
			w.partial = w.partial[:0]
		}
	}
	if w.sink != nil {
		w.sink.mu.Unlock()
		w.sink.signal()
	}
	return n, nil
}

// end passes on the line the child began and did not end; the child has
// ended, and its stderr has been read to the end.
func (w *childStderr) end() {
	if len(w.partial) == 0 {
		return
	}
	w.setPrefix()
	if w.sink != nil {
		w.sink.mu.Lock()
	}
	w.emit(w.partial)
	w.partial = nil
	if w.sink != nil {
		w.sink.mu.Unlock()
		w.sink.signal()
	}
}

// emit takes one line; w.sink.mu is held, if there is a sink.
func (w *childStderr) emit(line []byte) {
	w.crash.line(line)
	if w.sink != nil {
		w.sink.putLocked(w.prefix, line)
	}
}

// setPrefix makes the prefix name the task the child runs, or the last
// one it was given, and its pid.
func (w *childStderr) setPrefix() {
	name := w.c.task
	if j := w.c.running(); j != nil {
		name = j.call.Task
	}
	pid := 0
	if w.c.p != nil {
		pid = w.c.p.Pid()
	}
	if w.prefix != nil && name == w.prefixTask && pid == w.prefixPid {
		return
	}
	w.prefixTask, w.prefixPid = name, pid
	w.prefix = append(w.prefix[:0], '[')
	if name != "" {
		w.prefix = append(w.prefix, name...)
		w.prefix = append(w.prefix, ' ')
	}
	w.prefix = strconv.AppendInt(w.prefix, int64(pid), 10)
	w.prefix = append(w.prefix, "] "...)
}
