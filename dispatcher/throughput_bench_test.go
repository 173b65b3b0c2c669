package dispatcher_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// The benchmarks of reused children, warm spares, large answers and the
// parent's memory per child, all through the public API (Schedule and
// Value). The reuse and latency suites of bench/run.sh run them beside
// Python's pool and the bare pipe round trips.

var (
	benchEcho = task.Define("dispatcher_test.bench.echo", func(ctx context.Context, n int) (int, error) {
		return n, nil
	})
	benchBytes = task.Define("dispatcher_test.bench.bytes", func(ctx context.Context, n int) ([]byte, error) {
		return make([]byte, n), nil
	})
	benchFilled = task.Define("dispatcher_test.bench.filled", func(ctx context.Context, n int) ([]byte, error) {
		v := make([]byte, n)
		for i := 0; i < n; i += filledStride {
			v[i] = 1
		}
		return v, nil
	})
)

// filledStride is the distance between the bytes benchFilled writes: one
// in each 4 KiB page.
const filledStride = 4 << 10

// startThroughput starts a dispatcher for a benchmark and warms it with one
// task per child, so that the timed part starts with the children up.
func startThroughput(b *testing.B, s strategy.Strategy, warm int) *dispatcher.Dispatcher {
	b.Helper()
	d, err := dispatcher.Start(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	var rs []*result.Result[int]
	for i := range warm {
		rs = append(rs, benchEcho.Schedule(d, i))
	}
	for _, r := range rs {
		if _, err := r.Value(); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// scheduleAll schedules b.N no-op tasks, then waits for every value: the
// shape of Python's ProcessPoolExecutor.submit, then result.
func scheduleAll(b *testing.B, d *dispatcher.Dispatcher) {
	b.Helper()
	rs := make([]*result.Result[int], b.N)
	b.ResetTimer()
	for i := range rs {
		rs[i] = benchEcho.Schedule(d, i)
	}
	for i, r := range rs {
		if v, err := r.Value(); err != nil || v != i {
			b.Fatalf("task %d: Value() = %v, %v; want %d, nil", i, v, err, i)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkReusedPipelined: 2 reused children, up to 64 tasks in flight
// each. bench/python/pools.py pool is Python's match.
func BenchmarkReusedPipelined(b *testing.B) {
	d := startThroughput(b, strategy.Throttled(2, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(64)), 2)
	scheduleAll(b, d)
}

// BenchmarkReusedOneInFlight: 2 reused children, one task in flight each:
// every task is a round trip through both processes.
func BenchmarkReusedOneInFlight(b *testing.B) {
	d := startThroughput(b, strategy.Throttled(2, strategy.Reuse(strategy.Unlimited)), 2)
	scheduleAll(b, d)
}

// latency runs b.N single tasks on an otherwise idle dispatcher, one at a
// time, and reports the median and the 90th percentile of
// Schedule-to-Value. Before each (untimed) it waits until the children are
// quiet (a spare started for the last task has finished starting), then
// for idle more: how long the machine has been idle matters on a virtual
// machine, whose idle CPUs take longer to wake the longer they sleep.
func latency(b *testing.B, d *dispatcher.Dispatcher, idle time.Duration) {
	b.Helper()
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		waitQuiet(b)
		time.Sleep(idle)
		b.StartTimer()
		tracepoint.Mark(tracepoint.Scheduled)
		t0 := time.Now()
		if _, err := benchEcho.Schedule(d, i).Value(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
		tracepoint.Mark(tracepoint.ValueReturned)
	}
	b.StopTimer()
	tracepoint.Dump() // with the procrastinate_trace tag: bench/run.sh trace
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(times[len(times)*9/10].Microseconds()), "p90-µs")
}

// latencyIdle runs latency as sub-benchmarks, after 1 ms and after 20 ms
// of idleness, each on a dispatcher of its own from start.
func latencyIdle(b *testing.B, start func(b *testing.B) *dispatcher.Dispatcher) {
	for _, idle := range []time.Duration{time.Millisecond, 20 * time.Millisecond} {
		b.Run("idle="+idle.String(), func(b *testing.B) {
			latency(b, start(b), idle)
		})
	}
}

// BenchmarkLatencyFresh: a fresh process per task, no spare: the start of
// a process is in every task's latency.
func BenchmarkLatencyFresh(b *testing.B) {
	latency(b, startThroughput(b, strategy.Throttled(2), 1), time.Millisecond)
}

// BenchmarkLatencySpare: a fresh process per task with a warm spare: the
// task's start is a pipe write to a process that is already up.
func BenchmarkLatencySpare(b *testing.B) {
	latencyIdle(b, func(b *testing.B) *dispatcher.Dispatcher {
		return startThroughput(b, strategy.Throttled(2, strategy.Spares(1)), 1)
	})
}

// BenchmarkLatencyReused: a reused child that is idle between tasks.
func BenchmarkLatencyReused(b *testing.B) {
	latencyIdle(b, func(b *testing.B) *dispatcher.Dispatcher {
		return startThroughput(b, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)), 1)
	})
}

// BenchmarkAnswer64MiB: a 64 MiB []byte result through Value, from a
// reused child. The task returns make([]byte, n), a buffer it never
// wrote.
func BenchmarkAnswer64MiB(b *testing.B) {
	answer64MiB(b, benchBytes, nil)
}

// BenchmarkAnswer64MiBFilled: as BenchmarkAnswer64MiB, but the task writes
// one byte in each 4 KiB page of its answer before it returns, as a task
// that computes its answer does, and each answer is checked for those
// bytes. The time the task takes to fill its answer counts in the
// figure, the same on procman's Linux and portable backends.
func BenchmarkAnswer64MiBFilled(b *testing.B) {
	answer64MiB(b, benchFilled, func(v []byte) bool {
		for i := 0; i < len(v); i += filledStride {
			if v[i] != 1 {
				return false
			}
		}
		return true
	})
}

// answer64MiB runs b.N tasks of def, each answering 64 MiB, one at a time
// on one reused child, and checks each answer's length, and with ok
// unless it is nil.
func answer64MiB(b *testing.B, def *task.Def[int, []byte], ok func([]byte) bool) {
	b.Helper()
	const size = 64 << 20
	d := startThroughput(b, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)), 1)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := def.Schedule(d, size).Value()
		if err != nil || len(v) != size {
			b.Fatalf("Value() = %d bytes, %v; want %d, nil", len(v), err, size)
		}
		if ok != nil && !ok(v) {
			b.Fatalf("Value() = 64 MiB that is not what task %s wrote", def.Name())
		}
	}
}

// BenchmarkParentMemoryPerChild reports the heap the parent holds for each
// live, idle child: what 60 spares hold beyond what 10 hold, over 50, so
// that what a dispatcher holds whatever its number of children does not
// count. The timed part is heldBySpares for the 60.
func BenchmarkParentMemoryPerChild(b *testing.B) {
	const few, many = 10, 60
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		held := heldBySpares(b, few)
		b.StartTimer()
		held = heldBySpares(b, many) - held
		b.StopTimer()
		b.ReportMetric(float64(held)/(many-few), "heap-B/child")
	}
}

// heldBySpares starts a dispatcher with n spares and returns the heap it
// holds once they are idle, then closes it.
func heldBySpares(b *testing.B, n int) int64 {
	b.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p := newProbe(strategy.Simple(strategy.Spares(n)))
	d, err := dispatcher.Start(p)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	waitIdle(b, p, n)
	// Still for 5 ms: past a spare's start.
	waitStill(b, 10)
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// waitIdle waits until a Step of p has seen n idle children.
func waitIdle(b *testing.B, p *probe, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		ok := len(p.seen) > 0 && p.seen[len(p.seen)-1].Idle >= n
		p.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d idle children not seen in 30s", n)
		}
		select {
		case <-p.changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitQuiet waits until this process's children have stayed the same
// and used no CPU for 1.5 ms: the child that ran the last task is gone, and
// a spare started for it has finished starting.
func waitQuiet(b *testing.B) {
	b.Helper()
	waitStill(b, 3)
}

// waitStill waits until the CPU time of every thread of every child has
// not moved over n samples 0.5 ms apart, for 5 s at most.
func waitStill(b *testing.B, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last, still := "", 0
	defer func() {
		if still < n {
			b.Logf("the children's CPU time still moved after 5 s; going on")
		}
	}()
	for still < n && time.Now().Before(deadline) {
		time.Sleep(500 * time.Microsecond)
		now := childrenCPU()
		if now == last {
			still++
		} else {
			still = 0
		}
		last = now
	}
}

// childrenCPU lists every child of this process with the CPU time of each
// of its threads (from /proc: each thread's children, each child's
// threads' schedstat).
func childrenCPU() string {
	var out strings.Builder
	tids, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tids {
		data, _ := os.ReadFile(f)
		for _, pid := range strings.Fields(string(data)) {
			out.WriteString(pid + ":")
			stats, _ := filepath.Glob("/proc/" + pid + "/task/*/schedstat")
			for _, st := range stats {
				data, _ := os.ReadFile(st)
				if f := strings.Fields(string(data)); len(f) > 0 {
					out.WriteString(f[0] + ",")
				}
			}
			out.WriteString(" ")
		}
	}
	return out.String()
}
