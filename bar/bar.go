// Package bar draws a progress bar for a batch of work on a terminal, and
// a plain summary line now and then where the output is not one (a pipe,
// a file, a CI log). It links neither net/http nor any progress-bar
// library, so that it costs children nothing: every child is a fresh
// start of the same binary.
//
// [Bar.Follow] draws a dispatcher's work from its Stats until the work is
// done:
//
//	b := bar.New(os.Stderr)
//	b.Follow(ctx, d) // d a *dispatcher.Dispatcher with the batch scheduled
//
// A program that counts its work itself feeds the bar instead:
//
//	b := bar.New(os.Stderr)
//	for ... {
//		b.Update(bar.Counts{Done: done, Total: total, Running: running, Failed: failed})
//	}
//	b.Finish(bar.Counts{...})
//
// A Bar draws on the goroutine that calls Update or Follow, at most ten
// times a second on a terminal; a writer that blocks holds up that
// goroutine.
package bar

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Counts is what a bar shows: work done of a total, running and failed.
type Counts struct {
	Done    int64 // finished, whatever the outcome
	Total   int64 // 0 when not known
	Running int64
	Failed  int64 // of Done
	// Partial is the running work's own progress, in units of work: the
	// sum over running calls of the fraction each has done (0 when no call
	// reports its progress). It moves the bar and the ETA between ends.
	Partial float64
}

// Bar draws Counts on a writer. Get one from New. It is safe for
// concurrent use.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	width    int
	every    time.Duration // between draws
	now      func() time.Time
	start    time.Time
	last     time.Time // of the last draw; zero before the first
	drawn    bool
	finished bool
}

// Option configures a Bar.
type Option interface{ apply(*Bar) }

type optionFunc func(*Bar)

func (f optionFunc) apply(b *Bar) { f(b) }

// WithInterval sets how often a plain summary line is written where the
// writer is not a terminal (every 10 seconds by default). A terminal is
// redrawn at most ten times a second whatever it is.
func WithInterval(d time.Duration) Option {
	return optionFunc(func(b *Bar) {
		if !b.terminal {
			b.every = d
		}
	})
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(b *Bar) { b.now = now })
}

// New returns a Bar that draws on w: a bar redrawn in place when w is an
// *os.File open on a terminal, plain lines otherwise.
func New(w io.Writer, opts ...Option) *Bar {
	b := &Bar{w: w, now: time.Now, every: 10 * time.Second, width: 80}
	if f, ok := w.(*os.File); ok {
		if cols, ok := terminalWidth(f); ok {
			b.terminal, b.every = true, 100*time.Millisecond
			if cols > 0 {
				b.width = cols
			}
		}
	}
	for _, o := range opts {
		o.apply(b)
	}
	b.start = b.now()
	return b
}

// Terminal reports whether the bar draws in place on a terminal.
func (b *Bar) Terminal() bool { return b.terminal }

// Update shows c, unless the last drawing is more recent than the
// interval. It never waits but for the write.
func (b *Bar) Update(c Counts) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	now := b.now()
	if b.drawn && now.Sub(b.last) < b.every {
		return
	}
	if !b.terminal && !b.drawn && now.Sub(b.start) < b.every {
		return // a plain line only once there is something to say
	}
	b.draw(c, now)
}

// Finish shows c one last time, whatever the interval, and ends the bar's
// line; later Updates do nothing.
func (b *Bar) Finish(c Counts) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.draw(c, b.now())
	if b.terminal {
		_, _ = io.WriteString(b.w, "\n")
	}
	b.finished = true
}

func (b *Bar) draw(c Counts, now time.Time) {
	b.last, b.drawn = now, true
	elapsed := now.Sub(b.start)
	done := float64(c.Done) + c.Partial
	rate := 0.0
	if elapsed > 0 {
		rate = done / elapsed.Seconds()
	}
	eta := "?"
	if c.Total > 0 && rate > 0 {
		eta = fmtDuration(time.Duration((float64(c.Total) - done) / rate * float64(time.Second)))
	}
	total := "?"
	if c.Total > 0 {
		total = fmt.Sprint(c.Total)
	}
	stats := fmt.Sprintf("%d/%s %.1f/s ETA %s running %d failed %d", c.Done, total, rate, eta, c.Running, c.Failed)
	if !b.terminal {
		pct := ""
		if c.Total > 0 {
			pct = fmt.Sprintf(" (%.0f%%)", 100*done/float64(c.Total))
		}
		_, _ = fmt.Fprintf(b.w, "%d/%s done%s, %.1f/s, ETA %s, %d running, %d failed, %s elapsed\n",
			c.Done, total, pct, rate, eta, c.Running, c.Failed, fmtDuration(elapsed))
		return
	}
	frac := 0.0
	if c.Total > 0 {
		frac = min(max(done/float64(c.Total), 0), 1)
	}
	pct := fmt.Sprintf("%3.0f%% ", 100*frac)
	room := b.width - len(pct) - len(stats) - 4
	var line string
	if room >= 10 {
		room = min(room, 50)
		full := int(frac * float64(room))
		line = pct + "[" + strings.Repeat("#", full) + strings.Repeat(".", room-full) + "] " + stats
	} else {
		line = pct + stats
	}
	if len(line) > b.width-1 {
		line = line[:max(b.width-1, 0)]
	}
	_, _ = io.WriteString(b.w, "\r"+line+"\x1b[K")
}

// fmtDuration is d as h:mm:ss, or m:ss under an hour.
func fmtDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
