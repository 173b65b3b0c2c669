package dispatcher_test

import (
	"context"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
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
		opts task.CallOptions
	}{
		{"NoTimers", task.CallOptions{}},
		{"WithTimeout", task.CallOptions{Deadline: time.Now().Add(time.Hour)}},
		{"WithContext", task.CallOptions{Ctx: ctx}},
		{"WithActivityTimeout", task.CallOptions{Activity: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			d := start(t, strategy.Throttled(2, strategy.Reuse(0)))
			args, resolvers := runAndDrop(t, d, tc.opts, 16)
			runtime.GC()
			runtime.GC()
			held := 0
			for i := range args {
				if args[i].Value() != nil || resolvers[i].Value() != nil {
					held++
				}
			}
			require.Zero(t, held, "of %d resolved calls whose futures were dropped, %d still hold their 64 KiB argument or their answer", len(args), held)
			shutdown(t, d, nil)
		})
	}
}

// runAndDrop runs n checksum calls with opts and a 64 KiB argument each,
// waits until each has resolved, and drops them, keeping only weak
// pointers to their arguments and their resolvers (which hold the
// answers, never read).
func runAndDrop(t *testing.T, d *dispatcher.Dispatcher, opts task.CallOptions, n int) (args []weak.Pointer[byte], resolvers []weak.Pointer[result.Resolver]) {
	t.Helper()
	for i := range n {
		arg, err := checksum.Codec().Marshal(pattern(i, 64<<10))
		require.NoError(t, err)
		r, res := result.New(func([]byte) (int, error) { return 0, nil })
		d.Submit(&task.Call{Task: checksum.Name(), Arg: arg, Resolver: res, CallOptions: opts})
		select {
		case <-r.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("call %d did not resolve in 30s", i)
		}
		args = append(args, weak.Make(&arg[0]))
		resolvers = append(resolvers, weak.Make(res))
	}
	return args, resolvers
}
