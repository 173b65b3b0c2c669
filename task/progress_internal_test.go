package task

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// sentAt records when a reporter sent its progress notes.
type sentAt struct {
	mu    sync.Mutex
	times []time.Time
}

func (s *sentAt) note(seq uint64, kind procman.Kind, payload []byte) error {
	if kind == wire.KindProgress {
		s.mu.Lock()
		s.times = append(s.times, time.Now())
		s.mu.Unlock()
	}
	return nil
}

// A timer that fires while a report is being sent, and so waits for the
// lock, does not send a second report right behind that one: the reports
// stay progressEvery apart. On a loaded machine the timer fires late, a
// report made meanwhile sends at once, and the timer's turn comes next.
func TestProgressTimerThatFiresDuringASendWaitsItsTurn(t *testing.T) {
	s := &sentAt{}
	r := &reporter{note: s.note, seq: 1}
	require.NoError(t, r.report(1, 10)) // the first report is sent at once
	require.NoError(t, r.report(2, 10)) // this one arms the timer

	// What report does when its wait is over while the timer has fired
	// and waits for the lock: it sends, and the task reports again.
	r.mu.Lock()
	time.Sleep(progressEvery + 50*time.Millisecond) // the timer fires, and due waits
	r.latest = wire.Progress{Done: 3, Total: 10, Sent: time.Now()}
	r.dirty = true
	require.NoError(t, r.sendLocked())
	r.latest = wire.Progress{Done: 4, Total: 10, Sent: time.Now()}
	r.dirty = true
	r.mu.Unlock()

	time.Sleep(progressEvery + 100*time.Millisecond) // due's turn, and the one it arms
	r.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.times, 3, "the first report, the one made in the lock, and the last, sent by the timer")
	for i := 1; i < len(s.times); i++ {
		gap := s.times[i].Sub(s.times[i-1])
		require.GreaterOrEqual(t, gap, progressEvery, "reports %d and %d were %v apart", i-1, i, gap)
	}
}
