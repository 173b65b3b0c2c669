package dispatcher_test

import (
	"context"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// costArg is the argument of costly.
type costArg struct {
	CPU    time.Duration // CPU time to burn
	Memory int           // bytes to allocate and touch
}

// costly burns CPU time and touches memory, as its argument says.
var costly = task.Define("dispatcher_test.costly", func(ctx context.Context, a costArg) (int, error) {
	var mem []byte
	if a.Memory > 0 {
		mem = make([]byte, a.Memory)
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 1
		}
	}
	x := 0
	for start := time.Now(); time.Since(start) < a.CPU; {
		for i := range 10000 {
			x += i * i
		}
	}
	if mem != nil {
		mem = nil
		debug.FreeOSMemory() // the memory goes back: the next call in this child starts low
	}
	return x % 7, nil
})

// doneEvents returns the TaskDone events among events, by call.
func doneEvents(events []dispatcher.Event) map[uint64]dispatcher.Event {
	out := map[uint64]dispatcher.Event{}
	for _, e := range events {
		if e.Kind == dispatcher.TaskDone {
			out[e.Call] = e
		}
	}
	return out
}

// TestUsageOfACallInAReusedChild runs a call that burns 300 ms of CPU and
// touches 128 MiB, then a call that does neither, in the same child: each
// gets its own share, and the second's peak does not carry the first's.
func TestUsageOfACallInAReusedChild(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1, strategy.Reuse(3)), dispatcher.WithUsage())
	events, cancel := d.Subscribe(1000)
	defer cancel()
	_, err := costly.Schedule(d, costArg{CPU: 300 * time.Millisecond, Memory: 128 << 20}).Value()
	require.NoError(t, err)
	_, err = costly.Schedule(d, costArg{}).Value()
	require.NoError(t, err)
	s := d.Stats()
	got := collect(t, d, events, snap)

	done := doneEvents(got)
	big, small := done[1].Usage, done[2].Usage
	require.GreaterOrEqual(t, big.UserCPU+big.SystemCPU, 250*time.Millisecond, "the CPU time of a call that burnt 300 ms: %+v", big)
	require.GreaterOrEqual(t, big.MaxRSS, int64(128<<20), "the peak of a call that touched 128 MiB: %+v", big)
	require.Less(t, small.UserCPU+small.SystemCPU, 150*time.Millisecond, "the CPU time of the next call in the same child, which burnt none: %+v", small)
	require.Positive(t, small.MaxRSS, "the next call's peak: %+v", small)
	require.Less(t, small.MaxRSS, big.MaxRSS-64<<20, "the next call's peak, after a call that touched 128 MiB and gave it back: %+v; want well below the first call's, %d", small, big.MaxRSS)
	require.GreaterOrEqual(t, s.Tasks[costly.Name()].UserCPU+s.Tasks[costly.Name()].SystemCPU, 250*time.Millisecond, "Stats' CPU time of the task")
}

// TestUsageOfAFreshChildAndOfADeath checks what a call in a child of its
// own costs (the child's whole life), and that a call whose child died
// gets its usage from the child's exit.
func TestUsageOfAFreshChildAndOfADeath(t *testing.T) {
	checkLeaks(t)
	snap := leakcheck.Take()
	d := start(t, strategy.Throttled(1), dispatcher.WithUsage())
	events, cancel := d.Subscribe(1000)
	defer cancel()
	_, err := square.Schedule(d, 3).Value()
	require.NoError(t, err)
	_, err = badExit.Schedule(d, exitArg{Code: 3}).Value()
	require.Error(t, err)
	got := collect(t, d, events, snap)

	done := doneEvents(got)
	fresh, died := done[1].Usage, done[2].Usage
	require.GreaterOrEqual(t, fresh.UserCPU+fresh.SystemCPU, time.Millisecond, "the CPU time of a fresh child's call, which counts its Go runtime's start: %+v", fresh)
	require.Positive(t, fresh.MaxRSS, "the peak of a fresh child's call: %+v", fresh)
	require.Positive(t, died.UserCPU+died.SystemCPU, "the CPU time of a call whose child died, from its exit: %+v", died)
	require.Positive(t, died.MaxRSS, "the peak of a call whose child died, from its exit: %+v", died)
}
