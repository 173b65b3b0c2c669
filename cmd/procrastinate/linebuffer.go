package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lineMux writes the jobs' output a whole line at a time, as it comes
// (--line-buffer), each line tagged. Under -k, the lines of the first job
// not done yet go out as they come, and those of the jobs after it wait
// until it is done. The jobs' readers call it from their goroutines; the
// runner's own writes to stdout go through it too (Write).
type lineMux struct {
	mu   sync.Mutex
	out  *bufio.Writer
	errw io.Writer
	keep bool
	// Under -k: the jobs' seqs in order, the index of the one whose lines
	// go out, the lines the others hold, and which are done.
	order []int
	head  int
	held  map[int][]heldLines
	done  map[int]bool
}

// heldLines are lines of a job that waits for its turn under -k.
type heldLines struct {
	toErr bool
	b     []byte
}

func newLineMux(out *bufio.Writer, errw io.Writer, keep bool, order []int) *lineMux {
	return &lineMux{out: out, errw: errw, keep: keep, order: order, held: map[int][]heldLines{}, done: map[int]bool{}}
}

// Write writes the runner's own output (the joblog on stdout) between
// the jobs' lines.
func (m *lineMux) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.out.Write(p)
	if err == nil {
		err = m.out.Flush()
	}
	return n, err
}

// add puts job seq last in the order of -k (a block of --pipe).
func (m *lineMux) add(seq int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = append(m.order, seq)
}

// lines writes whole lines of job seq, or holds them until its turn.
func (m *lineMux) lines(seq int, toErr bool, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keep && (m.head >= len(m.order) || m.order[m.head] != seq) {
		m.held[seq] = append(m.held[seq], heldLines{toErr, b})
		return
	}
	m.emit(toErr, b)
}

func (m *lineMux) emit(toErr bool, b []byte) {
	if toErr {
		_ = m.out.Flush()
		_, _ = m.errw.Write(b)
		return
	}
	_, _ = m.out.Write(b)
	_ = m.out.Flush()
}

// jobDone marks job seq done, after its readers ended: under -k, the
// turn passes to the next job not done, and the lines held on the way
// go out.
func (m *lineMux) jobDone(seq int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done[seq] = true
	for m.head < len(m.order) && m.done[m.order[m.head]] {
		m.head++
		if m.head < len(m.order) {
			next := m.order[m.head]
			for _, h := range m.held[next] {
				m.emit(h.toErr, h.b)
			}
			delete(m.held, next)
		}
	}
}

// lineJob is one job's output under --line-buffer: a FIFO for each of
// stdout and stderr, which the job's shell opens (see redirect), and a
// reader of each. The runner keeps a writer of each open until the job
// is done, so that a reader sees no end before the job opened its FIFO.
type lineJob struct {
	paths    [2]string
	readers  [2]*os.File
	holds    [2]*os.File
	wg       sync.WaitGroup
	received atomic.Int64 // bytes of stdout, the joblog's Receive
}

// lineWait bounds how long the readers wait, once the job is done, for
// what it started and left holding its FIFOs.
const lineWait = 2 * time.Second

// startLineJob makes job seq's FIFOs in dir and starts their readers.
func (m *lineMux) startLineJob(dir string, seq int, tag string) (*lineJob, error) {
	j := &lineJob{}
	for i, name := range []string{"stdout", "stderr"} {
		j.paths[i] = filepath.Join(dir, fmt.Sprintf("%d.%s", seq, name))
		err := unix.Mkfifo(j.paths[i], 0o600)
		if err == nil {
			j.readers[i], err = os.OpenFile(j.paths[i], os.O_RDONLY|syscall.O_NONBLOCK, 0)
		}
		if err == nil {
			j.holds[i], err = os.OpenFile(j.paths[i], os.O_WRONLY, 0)
		}
		if err != nil {
			j.close()
			return nil, fmt.Errorf("--line-buffer: cannot make the FIFO of the job's %s: %w", name, err)
		}
	}
	for i := range j.readers {
		j.wg.Add(1)
		go m.pump(j, i, seq, tag)
	}
	return j, nil
}

// redirect is the shell's line for the job: it sends the job's stdout and
// stderr to its FIFOs, then runs line.
func (j *lineJob) redirect(line string) string {
	return "exec >" + shellQuote(j.paths[0]) + " 2>" + shellQuote(j.paths[1]) + "\n" + line
}

// pump reads stream i of the job and writes its whole lines; the last
// line goes out without a newline at the end when the job wrote none.
func (m *lineMux) pump(j *lineJob, i, seq int, tag string) {
	defer j.wg.Done()
	buf := make([]byte, 64<<10)
	var part []byte
	for {
		n, err := j.readers[i].Read(buf)
		if n > 0 {
			if i == 0 {
				j.received.Add(int64(n))
			}
			part = append(part, buf[:n]...)
			if k := bytes.LastIndexByte(part, '\n'); k >= 0 {
				m.lines(seq, i == 1, tagLines(tag, part[:k+1]))
				part = append([]byte(nil), part[k+1:]...)
			}
		}
		if err != nil {
			break
		}
	}
	if len(part) > 0 {
		m.lines(seq, i == 1, tagLines(tag, part))
	}
}

// end waits for the job's readers, once the job is done: up to lineWait
// for what holds its FIFOs still. It closes and removes the FIFOs.
func (j *lineJob) end() {
	for i := range j.holds {
		_ = j.holds[i].Close()
		j.holds[i] = nil
		_ = j.readers[i].SetReadDeadline(time.Now().Add(lineWait))
	}
	j.wg.Wait()
	j.close()
}

func (j *lineJob) close() {
	for i := range j.paths {
		for _, f := range []*os.File{j.readers[i], j.holds[i]} {
			if f != nil {
				_ = f.Close()
			}
		}
		if j.paths[i] != "" {
			_ = os.Remove(j.paths[i])
		}
	}
}

// tagLines puts tag before each line of b.
func tagLines(tag string, b []byte) []byte {
	if tag == "" {
		return b
	}
	var out []byte
	for len(b) > 0 {
		k := bytes.IndexByte(b, '\n')
		if k < 0 {
			k = len(b) - 1
		}
		out = append(append(out, tag...), b[:k+1]...)
		b = b[k+1:]
	}
	return out
}
