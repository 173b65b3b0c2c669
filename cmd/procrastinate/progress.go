package main

import (
	"io"
	"time"

	"github.com/procrastinate-go/procrastinate/bar"
)

// progress is --bar and --eta: the bar package's bar on stderr, fed with
// the run's counts; nothing without them.
type progress struct {
	b      *bar.Bar
	ticker *time.Ticker
}

func newProgress(o *options, w io.Writer, total int) *progress {
	if !o.bar && !o.eta {
		return &progress{}
	}
	b := bar.New(w)
	every := 100 * time.Millisecond
	if !b.Terminal() {
		every = time.Second
	}
	return &progress{b: b, ticker: time.NewTicker(every)}
}

func (p *progress) counts(r *runner, running int) bar.Counts {
	return bar.Counts{Done: int64(r.doneN), Total: int64(r.total), Running: int64(running), Failed: int64(r.failedN)}
}

// update shows the counts; the bar draws at most ten times a second.
func (p *progress) update(r *runner, running int) {
	if p.b != nil {
		p.b.Update(p.counts(r, running))
	}
}

// tick fires now and then while a bar is shown, so that it moves while no
// job ends; nil (never) otherwise.
func (p *progress) tick() <-chan time.Time {
	if p.ticker == nil {
		return nil
	}
	return p.ticker.C
}

func (p *progress) end(r *runner) {
	if p.b != nil {
		p.ticker.Stop()
		p.b.Finish(p.counts(r, 0))
	}
}
