package dispatcher

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a writer that the sink's goroutine writes and the test
// reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A child's stderr is passed on in whole lines, each with its prefix,
// however the child's writes cut it; a line longer than stderrLineMax in
// pieces of that size; a last line without a newline when the child ends.
func TestChildStderrPassesWholeLines(t *testing.T) {
	var out lockedBuffer
	s := newStderrSink(&out, hclog.NewNullLogger())
	w := &childStderr{c: &child{task: "t"}, sink: s}
	long := strings.Repeat("x", 2*stderrLineMax+100)
	for _, p := range []string{"ab", "c\nde", "f\n", long[:5000], long[5000:], "\nta", "il"} {
		n, err := w.Write([]byte(p))
		require.NoError(t, err)
		require.Equal(t, len(p), n)
	}
	w.end()
	s.close()
	want := "[t 0] abc\n[t 0] def\n" +
		"[t 0] " + long[:stderrLineMax] + "\n" +
		"[t 0] " + long[stderrLineMax:2*stderrLineMax] + "\n" +
		"[t 0] " + long[2*stderrLineMax:] + "\n" +
		"[t 0] tail\n"
	require.Equal(t, want, out.String())
	require.Zero(t, s.dropped.Load(), "bytes dropped")
}

// blockingWriter blocks in Write until release is closed, and has no
// write deadline to cut it short.
type blockingWriter struct {
	entered chan struct{} // gets a token as each Write begins
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return len(p), nil
}

// The end of a sink whose writer blocks, and cannot be given a deadline,
// waits a bounded time, drops what is queued and counts it; the writer
// goroutine ends when the write returns.
func TestStderrSinkEndsDespiteABlockedWriter(t *testing.T) {
	bw := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := newStderrSink(bw, hclog.NewNullLogger())
	w := &childStderr{c: &child{task: "t"}, sink: s}
	_, _ = w.Write([]byte("the first line, which the writer holds\n"))
	select {
	case <-bw.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer was not called in 10s")
	}
	_, _ = w.Write([]byte("a line that waits in the queue\n"))
	closed := make(chan struct{})
	go func() {
		s.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return in 10s with a writer that blocks")
	}
	require.Equal(t, int64(len("[t 0] a line that waits in the queue\n")), s.dropped.Load(), "bytes dropped at close")
	close(bw.release)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer goroutine did not end in 10s after the write returned")
	}
}

// A full queue drops lines and counts them; the stream says so before the
// next line that fits.
func TestStderrSinkDropsWhatDoesNotFit(t *testing.T) {
	bw := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	var out lockedBuffer
	s := newStderrSink(writerFunc(func(p []byte) (int, error) {
		select {
		case <-bw.release:
		default:
			bw.entered <- struct{}{}
			<-bw.release
		}
		return out.Write(p)
	}), hclog.NewNullLogger())
	w := &childStderr{c: &child{task: "t"}, sink: s}
	_, _ = w.Write([]byte("first\n"))
	<-bw.entered // the writer holds "first"
	line := strings.Repeat("y", 1000-len("[t 0] \n")) + "\n"
	for range stderrQueue/len(line) + 10 {
		_, _ = w.Write([]byte(line))
	}
	dropped := s.dropped.Load()
	require.Positive(t, dropped, "bytes dropped with the queue full")
	require.Zero(t, dropped%1000, "whole lines (of 1000 bytes with the prefix) are dropped: %d bytes", dropped)
	// A short line fits in what the long ones left free, with the notice.
	_, _ = w.Write([]byte("after\n"))
	require.Equal(t, dropped, s.dropped.Load(), "bytes dropped after a line that fits")
	close(bw.release)
	s.close()
	got := out.String()
	notice := string(dropNotice(dropped))
	require.True(t, strings.HasSuffix(got, notice+"[t 0] after\n"), "the stream ends with %q; want the notice, then the line after the drop", got[max(0, len(got)-200):])
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// BenchmarkChildStderr measures what the manager goroutine spends on a
// child's stderr: cutting 32 KiB reads of 64-byte lines, scanning them,
// and queueing them for a writer that keeps up (io.Discard) or for one
// that takes nothing, so that every line is dropped.
func BenchmarkChildStderr(b *testing.B) {
	chunk := bytes.Repeat([]byte(strings.Repeat("s", 63)+"\n"), 512)
	for _, bc := range []struct {
		name string
		w    func() (io.Writer, func())
	}{
		{"kept", func() (io.Writer, func()) { return io.Discard, func() {} }},
		{"dropped", func() (io.Writer, func()) {
			bw := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
			return bw, func() { close(bw.release) }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, release := bc.w()
			s := newStderrSink(w, hclog.NewNullLogger())
			cw := &childStderr{c: &child{task: "bench"}, sink: s}
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				_, _ = cw.Write(chunk)
			}
			b.StopTimer()
			release()
			s.close()
		})
	}
}
