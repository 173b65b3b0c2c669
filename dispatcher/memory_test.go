package dispatcher_test

import (
	"context"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// A call that has resolved holds nothing in its parent: once its caller
// drops the future, its argument and its answer are garbage, whatever
// timers the call had (a deadline an hour away, a context's, an activity
// timeout).
func TestResolvedCallsHoldNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, tc := range []struct {
		name string
		opts []task.CallOption
	}{
		{"NoTimers", nil},
		{"WithTimeout", []task.CallOption{task.WithTimeout(time.Hour)}},
		{"WithContext", []task.CallOption{task.WithContext(ctx)}},
		{"WithActivityTimeout", []task.CallOption{task.WithActivityTimeout(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			d := start(t, strategy.Throttled(2, strategy.Reuse(strategy.Unlimited)))
			w := &weakCalls{next: d}
			runAndDrop(t, w, tc.opts, 16)
			runtime.GC()
			runtime.GC()
			held := 0
			for i := range w.args {
				if w.args[i].Value() != nil || w.calls[i].Value() != nil {
					held++
				}
			}
			require.Zero(t, held, "of %d resolved calls whose futures were dropped, %d still hold their 64 KiB argument or their answer", len(w.args), held)
			shutdown(t, d, nil)
		})
	}
}

// weakCalls is a Scheduler that hands its calls to next, and keeps weak
// pointers to their arguments and to the calls (which hold the answers,
// never read).
type weakCalls struct {
	next  task.Scheduler
	args  []weak.Pointer[byte]
	calls []weak.Pointer[task.Call]
}

func (w *weakCalls) Submit(c *task.Call) {
	w.args = append(w.args, weak.Make(&c.Arg[0]))
	w.calls = append(w.calls, weak.Make(c))
	w.next.Submit(c)
}

// runAndDrop runs n checksum calls with opts and a 64 KiB argument each
// on s, waits until each has resolved, and drops them.
func runAndDrop(t *testing.T, s task.Scheduler, opts []task.CallOption, n int) {
	t.Helper()
	for i := range n {
		r := checksum.Schedule(s, pattern(i, 64<<10), opts...)
		select {
		case <-r.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("call %d did not resolve in 30s", i)
		}
	}
}
