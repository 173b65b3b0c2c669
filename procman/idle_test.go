package procman_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/tune"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// The two ways Step waits (SetIdle): busy, its thread blocked in
// epoll_wait; idle, its goroutine parked in the runtime's poller. A
// Wakeup reaches either, and one that races with the owner's switch from
// one to the other is not lost.
var waits = []struct {
	name string
	idle func(step int) bool
}{
	{"busy", func(int) bool { return false }},
	{"idle", func(int) bool { return true }},
	{"switching", func(step int) bool { return step%2 == 0 }},
	{"idle-in-threes", func(step int) bool { return step%3 != 0 }},
}

// stepper calls SetIdle as its wait mode says, then Step.
type stepper struct {
	m    *procman.Manager
	idle func(step int) bool
	n    int
}

func (s *stepper) Step() error {
	tune.SetIdle(s.m, s.idle(s.n))
	s.n++
	return s.m.Step()
}

// forEachWait runs test once for each pattern of waits, with a fresh
// manager and a stepper that follows the pattern.
func forEachWait(t *testing.T, test func(t *testing.T, m *procman.Manager, s *stepper)) {
	for _, w := range waits {
		t.Run(w.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t)
			test(t, m, &stepper{m: m, idle: w.idle})
		})
	}
}

func TestWakeupReachesEveryWait(t *testing.T) {
	forEachWait(t, func(t *testing.T, m *procman.Manager, s *stepper) {
		for range 4 {
			// From another goroutine, while Step sleeps.
			done := make(chan error, 1)
			go func() { done <- s.Step() }()
			assertAsleep(t, done)
			require.NoError(t, m.Wakeup())
			require.NoError(t, <-done)

			// Before Step: kept, and used up by one Step.
			require.NoError(t, m.Wakeup())
			require.NoError(t, m.Wakeup())
			deadline := time.Now().Add(safety)
			m.SetDeadline(deadline)
			require.NoError(t, s.Step())
			require.True(t, time.Now().Before(deadline), "Step slept to its deadline: the Wakeup was lost")
			deadline = time.Now().Add(20 * time.Millisecond)
			m.SetDeadline(deadline)
			require.NoError(t, s.Step())
			require.False(t, time.Now().Before(deadline), "Step returned before its deadline with nothing to do")
			m.SetDeadline(time.Time{})
		}
	})
}

// Wakeups without pause from two goroutines while the owner steps, and
// switches its wait: none may be lost.
func TestWakeupIsNeverLostWhileTheWaitSwitches(t *testing.T) {
	forEachWait(t, func(t *testing.T, m *procman.Manager, s *stepper) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						_ = m.Wakeup()
					}
				}
			})
		}
		steps := 1000
		if testing.Short() {
			steps = 200 // each Step contends with two goroutines that never pause
		}
		for range steps {
			deadline := time.Now().Add(5 * time.Second)
			m.SetDeadline(deadline)
			require.NoError(t, s.Step())
			if !time.Now().Before(deadline) {
				close(stop)
				wg.Wait()
				t.Fatal("Step slept to its deadline while Wakeup was called without pause: wakeups are lost")
			}
		}
		close(stop)
		wg.Wait()
		m.SetDeadline(time.Now())
		require.NoError(t, s.Step()) // take what the storm left pending
		for range 6 {
			stepWokenLater(t, m, s.Step)
		}
	})
}

// A child's frames and its exit reach a Step in every wait, and the
// deadline ends every wait.
func TestEveryWaitSeesChildrenAndDeadlines(t *testing.T) {
	forEachWait(t, func(t *testing.T, m *procman.Manager, s *stepper) {
		const n = 5
		c := &child{}
		c.onMessage = func(p *procman.Process, k procman.Kind, payload []byte) {
			if got := len(c.answers()); got < n {
				require.NoError(t, p.Send(work("echo", strconv.Itoa(got), got == n-1)))
			}
		}
		_, err := m.CreateProcess(procman.Spec{Invocation: work("echo", "0", false)}, c)
		require.NoError(t, err)
		deadline := time.Now().Add(safety)
		m.SetDeadline(deadline)
		for c.exit == nil {
			require.NoError(t, s.Step())
			require.True(t, time.Now().Before(deadline), "the child's frames or exit did not reach Step")
		}
		require.True(t, c.exit.Success(), "%v", c.exit)
		require.Len(t, c.answers(), n)

		for range 3 {
			deadline := time.Now().Add(15 * time.Millisecond)
			m.SetDeadline(deadline)
			require.NoError(t, s.Step())
			require.False(t, time.Now().Before(deadline), "Step returned before its deadline with nothing to do")
		}
		m.SetDeadline(time.Time{})
	})
}

// A Wakeup made while Step delivers events (here, by the handler of an
// answer) makes the next Step return at once, in every wait. Before
// takeWakeup, an idle Step cleared woken as it returned, and the next
// one parked over the Wakeup's deadline move until its own deadline.
func TestWakeupDuringDeliveryEndsTheNextStep(t *testing.T) {
	forEachWait(t, func(t *testing.T, m *procman.Manager, s *stepper) {
		for i := range 3 {
			c := &child{}
			woke := false
			c.onMessage = func(p *procman.Process, k procman.Kind, _ []byte) {
				if k == wire.KindAnswer && !woke {
					woke = true
					require.NoError(t, m.Wakeup())
				}
			}
			_, err := m.CreateProcess(procman.Spec{Invocation: work("echo", strconv.Itoa(i), true)}, c)
			require.NoError(t, err)
			m.SetDeadline(time.Now().Add(safety))
			for !woke {
				require.NoError(t, s.Step())
			}
			deadline := time.Now().Add(safety)
			m.SetDeadline(deadline)
			require.NoError(t, s.Step())
			require.True(t, time.Now().Before(deadline), "the Wakeup made during the last Step was lost")
			waitExit(t, m, c)
		}
	})
}
