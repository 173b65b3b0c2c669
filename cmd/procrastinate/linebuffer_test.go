package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// watched is a writer that tells when what it was written holds every
// one of some strings.
type watched struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  []string
	found chan struct{}
}

func watch(want ...string) *watched { return &watched{want: want, found: make(chan struct{})} }

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, _ := w.buf.Write(p)
	if w.want == nil {
		return n, nil
	}
	for _, s := range w.want {
		if !strings.Contains(w.buf.String(), s) {
			return n, nil
		}
	}
	w.want = nil
	close(w.found)
	return n, nil
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// gateFIFO makes a FIFO that a job reads (cat) to wait for the test.
func gateFIFO(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gate")
	require.NoError(t, unix.Mkfifo(p, 0o600), "mkfifo")
	return p
}

// open lets the job waiting on the FIFO gate go on; the runner's return
// first is a failure.
func open(t *testing.T, gate string, code <-chan int) {
	t.Helper()
	opened := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(gate, os.O_WRONLY, 0)
		if err == nil {
			err = w.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		require.NoError(t, err, "opening the gate %s", gate)
	case c := <-code:
		// Let the opener go: a reader that opens and closes the gate.
		if r, err := os.OpenFile(gate, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		<-opened
		t.Fatalf("the runner returned %d before its job read the gate", c)
	}
}

// runWatched runs the runner in a goroutine with stdout watched for
// want; it returns the exit status's channel.
func runWatched(t *testing.T, out, errs *watched, args ...string) <-chan int {
	t.Helper()
	leakcheck.Check(t)
	code := make(chan int, 1)
	go func() { code <- runMain(args, strings.NewReader(""), out, errs) }()
	return code
}

// waitFor waits until w saw its string while the runner runs; the
// runner's return first is a failure.
func waitFor(t *testing.T, w *watched, code <-chan int, what string) {
	t.Helper()
	select {
	case <-w.found:
	case c := <-code:
		t.Fatalf("the runner returned %d before %s; stdout %q", c, what, w.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not come within 60 s; stdout so far %q", what, w.String())
	}
}

func TestLineBufferPrintsLinesWhileTheJobRuns(t *testing.T) {
	gate := gateFIFO(t)
	out, errs := watch("a\ta1\n", "b\tb1\n", "b\tb2\n"), watch()
	code := runWatched(t, out, errs, "--line-buffer", "-j2", "--tag", "echo {}1; test {} = b || cat "+gate+"; echo {}2", ":::", "a", "b")
	// Without -k, b's lines come while a still waits; with a tag on each.
	waitFor(t, out, code, "job b's lines and job a's first line (job a waits on its gate)")
	open(t, gate, code)
	require.Equal(t, 0, <-code, "exit status; stderr %q", errs.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Equal(t, []string{"a\ta1", "b\tb1", "b\tb2", "a\ta2"}, sortedFirst(lines), "stdout with --line-buffer: %q", out.String())
}

// sortedFirst sorts the lines before the last one, which came after the
// gate opened.
func sortedFirst(l []string) []string {
	head := append([]string(nil), l[:len(l)-1]...)
	sort.Strings(head)
	return append(head, l[len(l)-1])
}

func TestLineBufferKeepOrder(t *testing.T) {
	gate := gateFIFO(t)
	out, errs := watch("a1\n"), watch()
	code := runWatched(t, out, errs, "--line-buffer", "-k", "-j2", "echo {}1; test {} = b || cat "+gate+"; echo {}2", ":::", "a", "b")
	waitFor(t, out, code, "job a's first line while it runs")
	open(t, gate, code)
	require.Equal(t, 0, <-code, "exit status; stderr %q", errs.String())
	require.Equal(t, "a1\na2\nb1\nb2\n", out.String(), "stdout with --line-buffer -k: the first job's lines as they come, then the next job's")
}

func TestLineBufferPartialLineAndStderr(t *testing.T) {
	out, errs, code := runIn(t, "", "--line-buffer", "--tag", `echo x; echo e >&2; printf "y\nz"`, ":::", "1")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "1\tx\n1\ty\n1\tz", out, "stdout with --line-buffer: the last line without its newline, tagged")
	require.Equal(t, "1\te\n", errs, "stderr with --line-buffer")
}

// TestOutputIsWrittenWhileJobsRun: a job's output is written out while
// a later job still runs, not held until the end of the run.
func TestOutputIsWrittenWhileJobsRun(t *testing.T) {
	gate := gateFIFO(t)
	out, errs := watch("a\n"), watch()
	code := runWatched(t, out, errs, "-k", "-j2", "test {} = a || cat "+gate+"; echo {}", ":::", "a", "b")
	waitFor(t, out, code, "job a's output while job b waits on its gate")
	open(t, gate, code)
	require.Equal(t, 0, <-code, "exit status; stderr %q", errs.String())
	require.Equal(t, "a\nb\n", out.String(), "stdout")
}
