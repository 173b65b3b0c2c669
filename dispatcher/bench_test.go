package dispatcher_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// The benchmarks of the public API: a fresh process per task, scheduled
// with Def.Schedule and read with Result.Value, beside a bare loop that
// re-executes this same test binary without the library. Compare them
// within one run (docs/performance.md; bench/run.sh fresh runs them).

// benchNoop is the no-op task.
var benchNoop = task.Define("bench.noop", func(ctx context.Context, n int) (int, error) {
	return n, nil
})

// benchNow answers with the wall-clock time at which the task started
// running in its child. Parent and child read the same clock
// (CLOCK_REALTIME), so the parent can subtract its own reading.
var benchNow = task.Define("bench.now", func(ctx context.Context, _ int) (int64, error) {
	return time.Now().UnixNano(), nil
})

// startBench starts a dispatcher for a benchmark, and shuts it down when
// the benchmark ends.
func startBench(b *testing.B, s strategy.Strategy) *dispatcher.Dispatcher {
	b.Helper()
	d, err := dispatcher.Start(s)
	if err != nil {
		b.Fatalf("dispatcher.Start(%v) = %v", s, err)
	}
	b.Cleanup(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			b.Errorf("Shutdown() = %v", err)
		}
	})
	return d
}

// mustAnswer reads r and fails the benchmark unless it answered want.
func mustAnswer(b *testing.B, r *result.Result[int], want int) {
	if v, err := r.Value(); err != nil || v != want {
		b.Fatalf("Value() = %v, %v; want %d, nil", v, err, want)
	}
}

// meter measures a benchmark's tasks: the rate, and the CPU that this
// process (the parent) and its reaped children used per task. CPU time
// is what a busy, shared machine disturbs least.
type meter struct {
	b             *testing.B
	self, reaped0 time.Duration
}

// startMeter resets the benchmark's timer and starts counting.
func startMeter(b *testing.B) *meter {
	b.ResetTimer()
	return &meter{b: b, self: cpuOf(syscall.RUSAGE_SELF), reaped0: cpuOf(syscall.RUSAGE_CHILDREN)}
}

// stop stops the timer and reports tasks/s, parent-cpu-µs/task and
// child-cpu-µs/task. It shuts d down first (with the timer stopped), if d
// is not nil, so that every child is reaped and counted.
func (m *meter) stop(d *dispatcher.Dispatcher) {
	m.b.StopTimer()
	if d != nil {
		if err := d.Shutdown(context.Background()); err != nil {
			m.b.Errorf("Shutdown() = %v", err)
		}
	}
	self := cpuOf(syscall.RUSAGE_SELF) - m.self
	reaped := cpuOf(syscall.RUSAGE_CHILDREN) - m.reaped0
	n := float64(m.b.N)
	if s := m.b.Elapsed().Seconds(); s > 0 {
		m.b.ReportMetric(n/s, "tasks/s")
	}
	m.b.ReportMetric(float64(self.Microseconds())/n, "parent-cpu-µs/task")
	m.b.ReportMetric(float64(reaped.Microseconds())/n, "child-cpu-µs/task")
}

// cpuOf returns the user and system time of who (RUSAGE_SELF or
// RUSAGE_CHILDREN: the children reaped so far).
func cpuOf(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		panic(fmt.Sprintf("getrusage: %v", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNoopThrottled2 schedules b.N no-op tasks at once under
// Throttled(2) and waits for them all: two children alive at a time, a
// fresh one per task.
func BenchmarkNoopThrottled2(b *testing.B) {
	d := startBench(b, strategy.Throttled(2))
	results := make([]*result.Result[int], b.N)
	m := startMeter(b)
	for i := range results {
		results[i] = benchNoop.Schedule(d, i)
	}
	for i, r := range results {
		mustAnswer(b, r, i)
	}
	m.stop(d)
}

// BenchmarkNoopSimple runs no-op tasks under Simple, which starts a child
// for every queued task at once. window=2 keeps two tasks in flight (the
// caller is the throttle: a new task is scheduled when the oldest
// answers), to compare with Throttled(2) and with the bare loop.
// burst=256 schedules 256 tasks at once and waits for them all, then the
// next 256: as unbounded as is kind to a shared machine.
func BenchmarkNoopSimple(b *testing.B) {
	b.Run("window=2", func(b *testing.B) {
		d := startBench(b, strategy.Simple())
		var window [2]*result.Result[int]
		m := startMeter(b)
		for i := 0; i < b.N; i++ {
			if r := window[i%2]; r != nil {
				mustAnswer(b, r, i-2)
			}
			window[i%2] = benchNoop.Schedule(d, i)
		}
		for i := max(b.N-2, 0); i < b.N; i++ {
			mustAnswer(b, window[i%2], i)
		}
		m.stop(d)
	})
	b.Run("burst=256", func(b *testing.B) {
		d := startBench(b, strategy.Simple())
		results := make([]*result.Result[int], 0, 256)
		m := startMeter(b)
		for i := 0; i < b.N; {
			results = results[:0]
			for ; i < b.N && len(results) < cap(results); i++ {
				results = append(results, benchNoop.Schedule(d, i))
			}
			first := i - len(results)
			for j, r := range results {
				mustAnswer(b, r, first+j)
			}
		}
		m.stop(d)
	})
}

// BenchmarkScheduleToStart measures, on an idle dispatcher, the time from
// Schedule to the moment the task starts running in its child: the
// wakeup of the manager goroutine, the strategy, the fork and exec, the
// child's Go runtime start and its reading of the invocation. It reports
// the median and the 90th percentile; ns/op is the whole round trip,
// answer and decoding included. Between tasks it leaves the dispatcher
// idle for 2 ms, so that the last child is reaped and the manager
// goroutine sleeps in epoll_wait.
func BenchmarkScheduleToStart(b *testing.B) {
	d := startBench(b, strategy.Simple())
	lat := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		time.Sleep(2 * time.Millisecond)
		b.StartTimer()
		t0 := time.Now().UnixNano()
		started, err := benchNow.Schedule(d, i).Value()
		if err != nil {
			b.Fatalf("Value() = %v", err)
		}
		lat = append(lat, float64(started-t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "ns/start")
	b.ReportMetric(lat[len(lat)*9/10], "p90-ns/start")
}

// BenchmarkIdleCPU measures the CPU (user and system, of this whole
// process: getrusage RUSAGE_SELF) and the voluntary context switches
// (each one a thread that went to sleep, so about one wakeup each) while
// a dispatcher that has run a task sits idle, beside the same process
// idle with no dispatcher at all. The figures are per 10 seconds.
//
// The full measure is 10 seconds of each; it runs only when -bench names
// IdleCPU and PROCRASTINATE_IDLE_BENCH=1 is set:
//
//	PROCRASTINATE_IDLE_BENCH=1 go test -run='^$' -bench=IdleCPU ./dispatcher/
//
// Otherwise (CI's one pass of every benchmark) it measures half a second
// of each.
func BenchmarkIdleCPU(b *testing.B) {
	window := 500 * time.Millisecond
	if os.Getenv("PROCRASTINATE_IDLE_BENCH") == "1" && strings.Contains(flag.Lookup("test.bench").Value.String(), "IdleCPU") {
		window = 10 * time.Second
	}
	per10s := float64(10*time.Second) / float64(window)
	var base, idle cpuUse
	for i := 0; i < b.N; i++ {
		base = base.add(idleFor(window))

		d, err := dispatcher.Start(strategy.Default())
		if err != nil {
			b.Fatal(err)
		}
		mustAnswer(b, benchNoop.Schedule(d, 7), 7)
		time.Sleep(50 * time.Millisecond) // the child's exit and reaping
		idle = idle.add(idleFor(window))
		if err := d.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(idle.cpu.Microseconds())/n*per10s, "cpu-µs/10s")
	b.ReportMetric(float64(idle.switches)/n*per10s, "wakeups/10s")
	b.ReportMetric(float64(base.cpu.Microseconds())/n*per10s, "base-cpu-µs/10s")
	b.ReportMetric(float64(base.switches)/n*per10s, "base-wakeups/10s")
}

// cpuUse is CPU time and voluntary context switches.
type cpuUse struct {
	cpu      time.Duration
	switches int64
}

func (u cpuUse) add(v cpuUse) cpuUse { return cpuUse{u.cpu + v.cpu, u.switches + v.switches} }

func selfUse() cpuUse {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprintf("getrusage: %v", err))
	}
	return cpuUse{
		cpu:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		switches: ru.Nvcsw,
	}
}

// idleFor sleeps for d and returns what the process used meanwhile. It
// first collects the garbage and returns free memory to the system, so
// that the collector and the scavenger have nothing left to do.
func idleFor(d time.Duration) cpuUse {
	debug.FreeOSMemory()
	time.Sleep(10 * time.Millisecond)
	before := selfUse()
	time.Sleep(d)
	after := selfUse()
	return cpuUse{after.cpu - before.cpu, after.switches - before.switches}
}

// The bare loop: no library, the least that a fresh process per task
// costs in Go. The parent re-executes this test binary with
// syscall.ForkExec and a pipe on fd 3; the child, in the init function
// below (after the same package initialisation as a procrastinate
// child), writes 8 bytes on the pipe and exits; the parent reads them and
// reaps the child by its pid. Two workers, so two children at a time.

const bareChildEnv = "PROCRASTINATE_BENCH_BARE_CHILD"

func init() {
	if os.Getenv(bareChildEnv) != "1" {
		return
	}
	var answer [8]byte
	binary.LittleEndian.PutUint64(answer[:], uint64(os.Getpid()))
	if _, err := syscall.Write(3, answer[:]); err != nil {
		os.Exit(2)
	}
	os.Exit(0)
}

func BenchmarkBareReexec2(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	attr := &syscall.ProcAttr{
		Env:   append(os.Environ(), bareChildEnv+"=1"),
		Files: []uintptr{devnull.Fd(), 1, 2, 0}, // fd 3: the pipe, set per child
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	m := startMeter(b)
	for range 2 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := bareOnce(exe, *attr); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	m.stop(nil)
}

// bareOnce starts one bare child, reads its 8 bytes and reaps it.
func bareOnce(exe string, attr syscall.ProcAttr) error {
	p, err := cloexecPipe()
	if err != nil {
		return err
	}
	attr.Files = append(attr.Files[:3:3], uintptr(p[1]))
	pid, err := syscall.ForkExec(exe, []string{os.Args[0]}, &attr)
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return fmt.Errorf("ForkExec: %w", err)
	}
	var buf [8]byte
	got := 0
	for got < len(buf) {
		n, err := syscall.Read(p[0], buf[got:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break
		}
		got += n
	}
	syscall.Close(p[0])
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("wait4(%d): %w", pid, err)
	case got != len(buf) || !ws.Exited() || ws.ExitStatus() != 0:
		return fmt.Errorf("bare child %d: read %d bytes of 8, status %v", pid, got, ws)
	}
	return nil
}
