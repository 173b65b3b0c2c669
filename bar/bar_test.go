//go:build linux

package bar_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/bar"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// clock is a time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1_000_000, 0)} }
func counts(done, total int64) bar.Counts {
	return bar.Counts{Done: done, Total: total, Running: 2, Failed: 1}
}

// pty opens a pseudo-terminal of 100 columns and returns its two ends:
// what the bar writes to, and what reads it.
func pty(t *testing.T) (term, reader *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here (/dev/ptmx: %v)", err)
	}
	require.NoError(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0), "unlockpt")
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	require.NoError(t, err, "ptsname")
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err, "opening the terminal's side")
	require.NoError(t, unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 100}), "setting its size")
	t.Cleanup(func() {
		s.Close()
		m.Close()
	})
	return s, m
}

// readUntil reads what the terminal got, up to and with the first end.
func readUntil(t *testing.T, r *os.File, end string) string {
	t.Helper()
	require.NoError(t, r.SetReadDeadline(time.Now().Add(5*time.Second)))
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), end) {
		n, err := r.Read(buf)
		require.NoError(t, err, "reading the terminal; got %q so far, want it to hold %q", got, end)
		got = append(got, buf[:n]...)
	}
	return string(got)
}

func TestOnATerminalTheBarRedrawsInPlaceAtMostTenTimesASecond(t *testing.T) {
	leakcheck.Check(t)
	term, r := pty(t)
	c := newClock()
	b := bar.New(term, bar.WithClock(c.now))
	require.True(t, b.Terminal(), "Terminal() on a pseudo-terminal")

	c.add(10 * time.Second)
	b.Update(counts(500, 2000))
	got := readUntil(t, r, "\x1b[K")
	require.True(t, strings.HasPrefix(got, "\r"), "a drawing starts at the line's start: %q", got)
	require.True(t, strings.HasSuffix(got, "\x1b[K"), "a drawing clears the rest of the line: %q", got)
	for _, want := range []string{" 25% [", "#", "500/2000", "50.0/s", "ETA 0:30", "running 2", "failed 1"} {
		require.Contains(t, got, want, "the bar %q", got)
	}
	require.LessOrEqual(t, len(got)-len("\r\x1b[K"), 99, "the bar's width on a terminal of 100 columns")

	// Within 100 ms of a drawing, updates draw nothing.
	for i := int64(0); i < 50; i++ {
		c.add(time.Millisecond)
		b.Update(counts(501+i, 2000))
	}
	c.add(100 * time.Millisecond)
	b.Finish(counts(2000, 2000))
	got = readUntil(t, r, "\n")
	require.Equal(t, 1, strings.Count(got, "\x1b[K"), "drawings in 150 ms (50 updates and the end): %q", got)
	require.Contains(t, got, "100% [", "the last drawing: %q", got)
	require.True(t, strings.HasSuffix(got, "\r\n") || strings.HasSuffix(got, "\n"), "Finish ends the line: %q", got)
}

func TestWithoutATerminalItWritesASummaryLineNowAndThen(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	b := bar.New(&buf, bar.WithClock(c.now), bar.WithInterval(5*time.Second))
	require.False(t, b.Terminal(), "Terminal() on a buffer")
	for i := int64(1); i <= 120; i++ {
		c.add(100 * time.Millisecond) // 12 s in all
		b.Update(counts(i, 200))
	}
	b.Finish(counts(200, 200))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 3, "lines for 12 s at one every 5 s, and the end: %q", buf.String())
	require.Equal(t, "50/200 done (25%), 10.0/s, ETA 0:15, 2 running, 1 failed, 0:05 elapsed", lines[0], "the first line")
	require.NotContains(t, buf.String(), "\r", "no carriage return without a terminal")
	require.Contains(t, lines[2], "200/200 done (100%)", "the last line")

	b.Update(counts(200, 200))
	require.Len(t, strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"), 3, "lines after Finish")
}

func TestAnUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	b := bar.New(&buf, bar.WithClock(c.now))
	c.add(time.Second)
	b.Finish(bar.Counts{Done: 3})
	require.Equal(t, "3/? done, 3.0/s, ETA ?, 0 running, 0 failed, 0:01 elapsed\n", buf.String(), "the line")
}

func TestPartialProgressMovesTheETA(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	b := bar.New(&buf, bar.WithClock(c.now))
	c.add(10 * time.Second)
	b.Finish(bar.Counts{Done: 0, Total: 4, Running: 2, Partial: 1})
	require.Contains(t, buf.String(), "(25%), 0.1/s, ETA 0:30", "the line with half of two calls done")
}
