package dispatcher_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// benchFlood calls task.Progress as fast as it can until it is
	// stopped; each report's Done is the number of calls made so far.
	benchFlood = task.Define("dispatcher_test.bench.flood", func(ctx context.Context, _ int) (int, error) {
		for i := int64(1); ctx.Err() == nil; i++ {
			if err := task.Progress(ctx, i, 0); err != nil {
				return 0, err
			}
		}
		return 0, ctx.Err()
	})
	// benchSpin reports once, then spins until it is stopped: the CPU
	// that benchFlood takes, without its reports.
	benchSpin = task.Define("dispatcher_test.bench.spin", func(ctx context.Context, _ int) (int, error) {
		if err := task.Progress(ctx, 1, 0); err != nil {
			return 0, err
		}
		n := 0
		for ctx.Err() == nil {
			n++
		}
		return n, ctx.Err()
	})
)

// BenchmarkLatencyBesideProgressFlood runs no-op calls one at a time on
// a reused child while its sibling runs beside=nothing (it is idle),
// beside=spin (a task that only burns its CPU) or beside=progress (a task
// that calls task.Progress in a tight loop), and reports the no-op
// calls' median and 90th percentile latency from Schedule to Value. spin
// against progress is the cost of the reports alone, as the parent
// takes them; nothing against spin is that of a busy CPU. For
// beside=progress, progress-calls/s is how many calls to task.Progress
// the flooding task made a second, and reports-received/s how many of
// them reached the caller's future. Compare them with
// go tool benchstat -col /beside.
func BenchmarkLatencyBesideProgressFlood(b *testing.B) {
	for _, beside := range []struct {
		name string
		def  *task.Def[int, int]
	}{{"nothing", nil}, {"spin", benchSpin}, {"progress", benchFlood}} {
		b.Run("beside="+beside.name, func(b *testing.B) {
			d := startThroughput(b, strategy.Throttled(2, strategy.Reuse(strategy.Unlimited)), 2)
			var (
				since    time.Time
				reports  func() int64 // made by the task beside since since
				received func() int64 // of them, reached the future
			)
			if beside.def != nil {
				ctx, stop := context.WithCancel(context.Background())
				r := beside.def.Schedule(d, 0, task.WithContext(ctx))
				// Running once it has reported.
				p, ok := r.Progress()
				for !ok {
					changed := r.ProgressChanged()
					if p, ok = r.Progress(); ok {
						break
					}
					select {
					case <-changed:
					case <-r.Done():
						_, err := r.Value()
						b.Fatalf("the task beside ended before it reported: %v", err)
					}
					p, ok = r.Progress()
				}
				var got atomic.Int64
				r.OnProgress(func(result.Progress) { got.Add(1) })
				received = got.Load
				since = time.Now()
				first := p.Done
				reports = func() int64 {
					p, _ := r.Progress()
					return p.Done - first
				}
				defer func() {
					stop()
					_, _ = r.Value()
				}()
			}
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := benchEcho.Schedule(d, i).Value(); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*9/10].Microseconds()), "p90-µs")
			if beside.def == benchFlood {
				took := time.Since(since).Seconds()
				b.ReportMetric(float64(reports())/took, "progress-calls/s")
				b.ReportMetric(float64(received())/took, "reports-received/s")
			}
			assertSiblingRan(b, d, beside.def)
		})
	}
}

// assertSiblingRan fails b unless the task beside (nil: none) was still
// running when the no-op calls were done, on the dispatcher's second
// child: the no-op calls ran beside it, not after it.
func assertSiblingRan(b *testing.B, d *dispatcher.Dispatcher, def *task.Def[int, int]) {
	b.Helper()
	if def == nil {
		return
	}
	if s := d.Stats().Tasks[def.Name()]; s.Running != 1 {
		b.Fatalf("calls of %s running after the no-op calls = %d; want 1", def.Name(), s.Running)
	}
}
