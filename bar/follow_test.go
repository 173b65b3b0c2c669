//go:build linux

package bar_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/bar"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// step takes a moment, and fails for every fifth n. A batch of 30 on
	// two children takes 300 ms at least.
	step = task.Define("bar_test.step", func(ctx context.Context, n int) (int, error) {
		time.Sleep(20 * time.Millisecond)
		if n%5 == 4 {
			return 0, errors.New("every fifth fails")
		}
		return n, nil
	})
	// halfway reports that it is half done, then waits for a byte from
	// the FIFO at path.
	halfway = task.Define("bar_test.halfway", func(ctx context.Context, path string) (int, error) {
		if err := task.Progress(ctx, 1, 2); err != nil {
			return 0, err
		}
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		_, err = io.ReadFull(f, make([]byte, 1))
		return 2, err
	})
)

// startBatch starts a dispatcher of two children and schedules n calls
// of step on it: n/5 of them fail.
func startBatch(t *testing.T, n int) *dispatcher.Dispatcher {
	t.Helper()
	d, err := dispatcher.Start(strategy.Throttled(2, strategy.Reuse(4)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Shutdown(context.Background()), "Shutdown") })
	for i := range n {
		step.Schedule(d, i)
	}
	return d
}

// recorder is a writer that the test reads while a bar writes to it.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func TestFollowDrawsABatchOnATerminalToItsEnd(t *testing.T) {
	leakcheck.Check(t)
	term, r := pty(t)
	// What the terminal shows is read as it comes, so that the bar never
	// waits for room in the terminal's buffer.
	shown := make(chan string, 1)
	go func() {
		var got []byte
		buf := make([]byte, 4096)
		_ = r.SetReadDeadline(time.Now().Add(time.Minute))
		for !bytes.Contains(got, []byte("\n")) {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		shown <- string(got)
	}()

	d := startBatch(t, 30)
	b := bar.New(term)
	require.True(t, b.Terminal(), "Terminal() on a pseudo-terminal")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	b.Follow(ctx, d)
	took := time.Since(start)
	require.NoError(t, ctx.Err(), "Follow returned when its context ended, not when the batch was done")

	got := <-shown
	require.True(t, strings.HasSuffix(got, "\n"), "Follow ends the bar's line: %q", got)
	frames := strings.Split(strings.TrimRight(got, "\r\n"), "\r")[1:]
	require.NotEmpty(t, frames, "frames drawn: %q", got)
	require.LessOrEqual(t, len(frames), int(took/(100*time.Millisecond))+2,
		"frames drawn in %v, at most ten a second and the last: %q", took, got)
	last := frames[len(frames)-1]
	for _, want := range []string{"100% [", "30/30 ", "running 0", "failed 6"} {
		require.Contains(t, last, want, "the last frame %q", last)
	}
	s := d.Stats()
	require.Equal(t, int64(30), s.Done(), "calls done once Follow returned")
}

func TestFollowWritesSummaryLinesWhereTheWriterIsNoTerminal(t *testing.T) {
	leakcheck.Check(t)
	d := startBatch(t, 30)
	var w recorder
	b := bar.New(&w, bar.WithInterval(50*time.Millisecond))
	require.False(t, b.Terminal(), "Terminal() on a writer that is no file")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.Follow(ctx, d)
	require.NoError(t, ctx.Err(), "Follow returned when its context ended, not when the batch was done")

	out := w.String()
	require.NotContains(t, out, "\r", "no carriage return without a terminal")
	require.True(t, strings.HasSuffix(out, "\n"), "the last line ends: %q", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 2, "lines written for a batch of 300 ms at least, one every 50 ms at most: %q", out)
	require.False(t, strings.HasPrefix(lines[0], "30/30 "), "the first line %q; want one drawn while the batch ran", lines[0])
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "30/30 done (100%), "), "the last line %q; want the batch's totals", last)
	require.Contains(t, last, ", 0 running, 6 failed, ", "the last line %q", last)

	b.Update(bar.Counts{Done: 1})
	require.Equal(t, out, w.String(), "what an Update after Follow wrote")
}

func TestFollowCountsTheProgressOfRunningCallsUntilItsContextEnds(t *testing.T) {
	leakcheck.Check(t)
	fifo := filepath.Join(t.TempDir(), "release")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	// Held open for reading and writing: the tasks' opens do not block,
	// and they read nothing until the test writes.
	release, err := os.OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	defer release.Close()
	d, err := dispatcher.Start(strategy.Throttled(2))
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Shutdown(context.Background()), "Shutdown") }()
	r1, r2 := halfway.Schedule(d, fifo), halfway.Schedule(d, fifo)

	var w recorder
	b := bar.New(&w, bar.WithInterval(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		b.Follow(ctx, d)
	}()
	// Two calls, each half done: one call's worth of the two.
	require.Eventually(t, func() bool { return strings.Contains(w.String(), "0/2 done (50%)") },
		30*time.Second, 10*time.Millisecond, "a line with two calls half done; got %q", w.String())
	cancel()
	<-followed
	out := w.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "0/2 done (50%), "), "the line drawn as the context ended: %q", last)
	require.Contains(t, last, ", 2 running, 0 failed, ", "the line drawn as the context ended: %q", last)

	_, err = release.Write([]byte("..."))
	require.NoError(t, err)
	for _, r := range []interface{ Value() (int, error) }{r1, r2} {
		v, err := r.Value()
		require.NoError(t, err, "a halfway call once released")
		require.Equal(t, 2, v, "a halfway call's value")
	}
}

// stats is a Source that always says the same.
type stats dispatcher.Stats

func (s stats) Stats() dispatcher.Stats { return dispatcher.Stats(s) }

func TestFollowShowsWhatTheStatsSay(t *testing.T) {
	var s stats
	s.Scheduled = 20
	s.Running = 3
	s.Completed[dispatcher.OutcomeSucceeded] = 6
	s.Completed[dispatcher.OutcomeFailed] = 1
	s.Completed[dispatcher.OutcomeDied] = 1
	s.Completed[dispatcher.OutcomeCancelled] = 1
	s.Completed[dispatcher.OutcomeRefused] = 1
	s.Tasks = map[string]dispatcher.TaskStats{
		// Two running, one of them reporting 3 of 4: 1.5 calls' worth.
		"a": {Running: 2, ProgressDone: 3, ProgressTotal: 4},
		// One running, reporting no total: nothing.
		"b": {Running: 1, ProgressDone: 7},
	}
	var w recorder
	c := newClock()
	b := bar.New(&w, bar.WithClock(c.now))
	c.add(10 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.Follow(ctx, s)
	require.Equal(t, "10/20 done (58%), 1.1/s, ETA 0:07, 3 running, 4 failed, 0:10 elapsed\n", w.String(),
		"the line of 10 calls done and 1.5 calls' worth running, of 20")
}
