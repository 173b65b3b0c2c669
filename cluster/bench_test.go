package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// nop is the task of the benchmarks: it does nothing.
var nop = task.Define("cluster_test.nop", func(ctx context.Context, _ int) (int, error) {
	return 0, nil
})

// benchStrategy is the strategy of the local dispatcher of the
// benchmarks: two reused children with a pipeline, so that a call costs a
// share of a pipe round trip and not a process start.
func benchStrategy() strategy.Strategy {
	return strategy.Throttled(workerChildren, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(16))
}

// workerStrategy is the strategy of the workers' dispatchers: every call
// that a worker runs can be stopped (by its caller, its lease or the
// worker's shutdown), and the dispatcher pipelines such calls like any
// other, so it is the local dispatcher's.
func workerStrategy() strategy.Strategy { return benchStrategy() }

// workerChildren is how many children a worker's strategy keeps.
const workerChildren = 2

// benchWorkers is how many workers serve the cluster in the benchmarks,
// and how many consumers the raw loop has.
const benchWorkers = 3

// benchSlots is each worker's slots.
const benchSlots = 32

// startBenchNode starts an embedded node for a benchmark.
func startBenchNode(b *testing.B) *embedded.Node {
	b.Helper()
	node, err := embedded.Start(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(node.Shutdown)
	return node
}

// startBenchCluster starts a node, benchWorkers workers (each with a
// dispatcher and a connection of its own) and a client. With runToEnd the
// workers run calls to their end (cluster.RunToEnd), on dispatchers with
// the local benchmark's pipelined strategy.
func startBenchCluster(b *testing.B, runToEnd bool) *cluster.Client {
	b.Helper()
	node := startBenchNode(b)
	ctx := context.Background()
	c, err := cluster.New(ctx, node.Conn(), cluster.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for range benchWorkers {
		nc, err := nats.Connect("", nats.InProcessServer(node.Server()))
		if err != nil {
			b.Fatal(err)
		}
		strat, opts := workerStrategy(), []cluster.ServeOption{cluster.Slots(benchSlots)}
		if runToEnd {
			strat, opts = benchStrategy(), append(opts, cluster.RunToEnd())
		}
		d, err := dispatcher.Start(strat)
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cluster.Serve(wctx, nc, d, opts...) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
			// No-op calls kill no child: a worker that started more than
			// its strategy keeps does not reuse them, and the figures
			// would measure process starts.
			if n := d.Stats().ChildrenStarted; n > 2*workerChildren {
				b.Errorf("a worker started %d children for no-op calls, want at most %d: its strategy does not reuse them", n, 2*workerChildren)
			}
			_ = d.Shutdown(ctx)
			nc.Close()
		})
	}
	// Warm the workers' children up.
	var rs []*result.Result[int]
	for range 2 * benchWorkers * benchSlots {
		rs = append(rs, nop.Schedule(c, 0))
	}
	waitAll(b, rs)
	return c
}

func waitAll(b *testing.B, rs []*result.Result[int]) {
	b.Helper()
	for _, r := range rs {
		if _, err := r.Value(); err != nil {
			b.Fatal(err)
		}
	}
}

// reportRate reports the calls a second since start, and the CPU time
// that a call took since the CPU times were cpu: this process and its
// children together, and the children alone. On a shared machine the CPU
// times move less than the rate with the other work on it.
func reportRate(b *testing.B, start time.Time, cpu cpuTimes) {
	b.Helper()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	now := cpuTime()
	b.ReportMetric(float64((now.self+now.children-cpu.self-cpu.children).Microseconds())/float64(b.N), "cpu-µs/call")
	b.ReportMetric(float64((now.children-cpu.children).Microseconds())/float64(b.N), "child-cpu-µs/call")
}

// cpuTimes are CPU times: of this process, and of its children.
type cpuTimes struct{ self, children time.Duration }

// cpuTime returns the CPU time of this process and of its children,
// alive or reaped.
func cpuTime() cpuTimes {
	var self, reaped syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &reaped)
	t := cpuTimes{
		self:     time.Duration(self.Utime.Nano() + self.Stime.Nano()),
		children: time.Duration(reaped.Utime.Nano() + reaped.Stime.Nano()),
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	ppid := strconv.Itoa(os.Getpid())
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state, ppid, ..., and
		// utime and stime, the 14th and 15th fields, in clock ticks
		// (1/100 s).
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 || f[1] != ppid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		t.children += time.Duration(u+s) * 10 * time.Millisecond
	}
	return t
}

// BenchmarkThroughput schedules b.N no-op calls at once and waits for all:
// through the cluster (an embedded node, three workers; with and without
// cluster.RunToEnd), through JetStream
// alone (publish, three consumers, ack: the floor under the cluster), and
// on one local dispatcher. calls/s is the figure to compare.
func BenchmarkThroughput(b *testing.B) {
	for _, runToEnd := range []bool{false, true} {
		name := "cluster"
		if runToEnd {
			name = "cluster-runtoend"
		}
		b.Run(name, func(b *testing.B) {
			c := startBenchCluster(b, runToEnd)
			rs := make([]*result.Result[int], b.N)
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			for i := range rs {
				rs[i] = nop.Schedule(c, i)
			}
			waitAll(b, rs)
			reportRate(b, start, cpu)
		})
	}
	b.Run("jetstream", func(b *testing.B) {
		node := startBenchNode(b)
		ctx := context.Background()
		js, err := jetstream.New(node.Conn(), jetstream.WithPublishAsyncMaxPending(4096))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
			b.Fatal(err)
		}
		cons, err := js.CreateConsumer(ctx, "RAW", jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1})
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		all := make(chan struct{})
		n := int64(b.N)
		for range benchWorkers {
			nc, err := nats.Connect("", nats.InProcessServer(node.Server()))
			if err != nil {
				b.Fatal(err)
			}
			wjs, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			wcons, err := wjs.Consumer(ctx, "RAW", "raw")
			if err != nil {
				b.Fatal(err)
			}
			cc, err := wcons.Consume(func(m jetstream.Msg) {
				_ = m.Ack()
				if got.Add(1) == n {
					close(all)
				}
			}, jetstream.PullMaxMessages(benchSlots))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				cc.Stop()
				<-cc.Closed()
				nc.Close()
			})
		}
		_ = cons
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		// A loaded machine may leave 4096 publishes unconfirmed for
		// longer than the default stall wait of 200ms.
		stall := jetstream.WithStallWait(time.Minute)
		for range b.N {
			if _, err := js.PublishAsync("raw", []byte("x"), stall); err != nil {
				b.Fatal(err)
			}
		}
		<-all
		reportRate(b, start, cpu)
	})
	b.Run("local", func(b *testing.B) {
		d, err := dispatcher.Start(benchStrategy())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Shutdown(context.Background()) })
		waitAll(b, []*result.Result[int]{nop.Schedule(d, 0), nop.Schedule(d, 0)})
		rs := make([]*result.Result[int], b.N)
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		for i := range rs {
			rs[i] = nop.Schedule(d, i)
		}
		waitAll(b, rs)
		reportRate(b, start, cpu)
	})
}

// BenchmarkRoundTrip makes one no-op call at a time and reports the
// median and the 99th percentile of their round trips: through the
// cluster, through JetStream alone (publish, consume, ack, reply), and on
// a local dispatcher.
func BenchmarkRoundTrip(b *testing.B) {
	report := func(b *testing.B, ds []time.Duration) {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
	}
	for _, runToEnd := range []bool{false, true} {
		name := "cluster"
		if runToEnd {
			name = "cluster-runtoend"
		}
		b.Run(name, func(b *testing.B) {
			c := startBenchCluster(b, runToEnd)
			ds := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range ds {
				start := time.Now()
				if _, err := nop.Schedule(c, i).Value(); err != nil {
					b.Fatal(err)
				}
				ds[i] = time.Since(start)
			}
			report(b, ds)
		})
	}
	b.Run("jetstream", func(b *testing.B) {
		node := startBenchNode(b)
		ctx := context.Background()
		js, err := jetstream.New(node.Conn())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
			b.Fatal(err)
		}
		cons, err := js.CreateConsumer(ctx, "RAW", jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		cc, err := cons.Consume(func(m jetstream.Msg) {
			mu.Lock()
			defer mu.Unlock()
			_ = m.Ack()
			_ = node.Conn().Publish("raw.reply", m.Data())
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			cc.Stop()
			<-cc.Closed()
		})
		sub, err := node.Conn().SubscribeSync("raw.reply")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Unsubscribe() })
		ds := make([]time.Duration, b.N)
		b.ResetTimer()
		for i := range ds {
			start := time.Now()
			if _, err := js.Publish(ctx, "raw", []byte("x")); err != nil {
				b.Fatal(err)
			}
			if _, err := sub.NextMsg(10 * time.Second); err != nil {
				b.Fatal(err)
			}
			ds[i] = time.Since(start)
		}
		report(b, ds)
	})
	b.Run("local", func(b *testing.B) {
		d, err := dispatcher.Start(benchStrategy())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Shutdown(context.Background()) })
		waitAll(b, []*result.Result[int]{nop.Schedule(d, 0)})
		ds := make([]time.Duration, b.N)
		b.ResetTimer()
		for i := range ds {
			start := time.Now()
			if _, err := nop.Schedule(d, i).Value(); err != nil {
				b.Fatal(err)
			}
			ds[i] = time.Since(start)
		}
		report(b, ds)
	})
}
