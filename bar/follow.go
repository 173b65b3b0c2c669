package bar

import (
	"context"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
)

// Source is what Follow draws: a *dispatcher.Dispatcher, or anything
// else whose Stats returns at once.
type Source interface {
	Stats() dispatcher.Stats
}

// followEvery is how often Follow reads the Stats: as often as a terminal
// is redrawn at most.
const followEvery = 100 * time.Millisecond

// Follow draws the work of s until ctx ends or every call scheduled on s
// so far has ended, then draws it one last time and ends the bar, as
// Finish does. It returns as soon as it sees one call at least scheduled
// and every call scheduled ended, so schedule the batch before it; where
// calls come in over time and may all be done between two, feed the bar
// with Update and Finish instead.
//
// It reads s.Stats ten times a second and shows, of the calls scheduled,
// the number done (failed: any outcome but a value), running, and the
// progress that the running calls report with task.Progress. A task's
// running calls count as far along as the average of those that report
// a total. Follow runs on the caller's goroutine, starts none, and never
// waits but for the bar's writes.
func (b *Bar) Follow(ctx context.Context, s Source) {
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		st := s.Stats()
		if ctx.Err() != nil || st.Scheduled > 0 && st.Done() >= st.Scheduled {
			b.Finish(countsOf(st))
			return
		}
		b.Update(countsOf(st))
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// countsOf is what a bar shows of s.
func countsOf(s dispatcher.Stats) Counts {
	done := s.Done()
	c := Counts{
		Done:    done,
		Total:   s.Scheduled,
		Running: int64(s.Running),
		Failed:  done - s.Completed[dispatcher.OutcomeSucceeded],
	}
	for _, t := range s.Tasks {
		if t.Running > 0 && t.ProgressTotal > 0 {
			c.Partial += float64(t.Running) * min(float64(t.ProgressDone)/float64(t.ProgressTotal), 1)
		}
	}
	return c
}
