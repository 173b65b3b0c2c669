// Command tasksize measures how large a task must be for a process of its
// own to pay. It runs the same CPU-bound work, of each size given, n
// times, two at a time, in three ways:
//
//   - goroutine: in two goroutines of this process, the floor;
//   - fresh: through the public API, a fresh process per task
//     (strategy.Throttled(2));
//   - reused: through the public API, in two children that serve every
//     task (strategy.Throttled(2, strategy.Reuse(strategy.Unlimited))).
//
// Each run is measured from outside, the dispatcher's start and shutdown
// included: its wall time per task, and the CPU per task of the whole
// program, parent and children. Set beside the goroutines' figures of the
// same size, they say what a process adds to a task.
//
// The work is a busy loop that touches no memory. Its size is CPU time:
// -calibrate prints how many rounds of the loop take one millisecond of
// CPU here, and -per-ms hands that figure to every later run, so that the
// runs of one comparison do the same work.
//
//	go build -o tasksize ./bench/tasksize
//	./tasksize -per-ms "$(./tasksize -calibrate)" -sizes 1ms,30ms
//
// It prints one line in the format of go test -bench per size and way,
// named TaskSize/work=SIZE/mode=WAY, with wall-µs/task and cpu-µs/task.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/bench/internal/meter"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// work runs the busy loop for the rounds it is given, in a child.
var work = task.Define("tasksize.spin", func(ctx context.Context, rounds int) (uint64, error) {
	return spin(rounds), nil
})

// inFlight is how many tasks run at a time, in every way.
const inFlight = 2

// modes are the ways a task can run, in the order they are run.
var modes = []string{"goroutine", "fresh", "reused"}

// config is what a run measures.
type config struct {
	perMs    int             // rounds of spin in one millisecond of CPU
	sizes    []time.Duration // CPU time per task
	modes    []string
	budget   time.Duration // CPU time of work per size and mode, which sets n
	min, max int           // bounds on n
	reverse  bool          // run the sizes and modes backwards
}

func main() {
	procrastinate.Main()
	var c config
	calibrateOnly := flag.Bool("calibrate", false, "print how many rounds of the busy loop take 1 ms of CPU, and exit")
	flag.IntVar(&c.perMs, "per-ms", 0, "rounds of the busy loop in 1 ms of CPU (from -calibrate; 0: calibrate now)")
	sizes := flag.String("sizes", "100µs,300µs,1ms,3ms,10ms,30ms,100ms", "CPU time per task, comma-separated")
	modeList := flag.String("modes", strings.Join(modes, ","), "the ways to run the tasks, comma-separated")
	flag.DurationVar(&c.budget, "budget", time.Second, "CPU time of work per size and way: n is budget / size, within -min and -max")
	flag.IntVar(&c.min, "min", 10, "the fewest tasks of a size")
	flag.IntVar(&c.max, "max", 1000, "the most tasks of a size")
	flag.BoolVar(&c.reverse, "reverse", false, "run the sizes and ways in the reverse order")
	flag.Parse()
	if *calibrateOnly {
		fmt.Println(calibrate())
		return
	}
	var err error
	if c.sizes, err = parseSizes(*sizes); err == nil {
		c.modes, err = parseModes(*modeList)
	}
	if err == nil && (c.min < 1 || c.max < c.min || c.budget <= 0 || c.perMs < 0) {
		err = errors.New("want -budget > 0, 1 <= -min <= -max and -per-ms >= 0")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasksize:", err)
		flag.Usage()
		os.Exit(2)
	}
	if c.perMs == 0 {
		c.perMs = calibrate()
	}
	if err := measure(os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "tasksize:", err)
		os.Exit(1)
	}
}

func parseSizes(list string) ([]time.Duration, error) {
	var sizes []time.Duration
	for s := range strings.SplitSeq(list, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("-sizes: %q is not a positive duration", s)
		}
		sizes = append(sizes, d)
	}
	return sizes, nil
}

func parseModes(list string) ([]string, error) {
	var out []string
	for m := range strings.SplitSeq(list, ",") {
		m = strings.TrimSpace(m)
		if !slices.Contains(modes, m) {
			return nil, fmt.Errorf("-modes: %q is not one of %s", m, strings.Join(modes, ", "))
		}
		out = append(out, m)
	}
	return out, nil
}

// run is one size in one way.
type run struct {
	size time.Duration
	mode string
}

// measure runs every size in every way and writes a line for each to w.
func measure(w io.Writer, c config) error {
	var runs []run
	for _, size := range c.sizes {
		for _, mode := range c.modes {
			runs = append(runs, run{size, mode})
		}
	}
	if c.reverse {
		slices.Reverse(runs)
	}
	for _, r := range runs {
		rounds := int(int64(c.perMs) * int64(r.size) / int64(time.Millisecond))
		n := int(min(max(int64(c.budget/r.size), int64(c.min)), int64(c.max)))
		use, err := runTasks(r.mode, n, rounds)
		if err != nil {
			return fmt.Errorf("work=%v/mode=%s: %w", r.size, r.mode, err)
		}
		_, err = fmt.Fprintf(w, "BenchmarkTaskSize/work=%v/mode=%s\t%d\t%.1f wall-µs/task\t%.1f cpu-µs/task\n",
			r.size, r.mode, n, meter.PerTask(use.Wall, n), meter.PerTask(use.Self+use.Children, n))
		if err != nil {
			return err
		}
	}
	return nil
}

// runTasks runs n tasks of the given rounds of work in one way, two at a
// time, and returns what they used from start to end.
func runTasks(mode string, n, rounds int) (meter.Use, error) {
	want := spin(rounds)
	if mode == "goroutine" {
		m := meter.Start()
		var next atomic.Int64
		var wrong atomic.Int64
		var wg sync.WaitGroup
		for range inFlight {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if spin(rounds) != want {
						wrong.Add(1)
					}
				}
			})
		}
		wg.Wait()
		use := m.Stop()
		if wrong.Load() != 0 {
			return use, fmt.Errorf("%d of %d tasks computed another answer", wrong.Load(), n)
		}
		return use, nil
	}
	s := strategy.Throttled(inFlight)
	if mode == "reused" {
		s = strategy.Throttled(inFlight, strategy.Reuse(strategy.Unlimited))
	}
	m := meter.Start()
	d, err := dispatcher.Start(s)
	if err != nil {
		return meter.Use{}, err
	}
	rs := make([]*result.Result[uint64], n)
	for i := range rs {
		rs[i] = work.Schedule(d, rounds)
	}
	for i, r := range rs {
		if v, err := r.Value(); err != nil || v != want {
			_ = d.Close()
			return meter.Use{}, fmt.Errorf("task %d: Value() = %v, %v; want %v, nil", i, v, err, want)
		}
	}
	// Every child is reaped when Shutdown returns, and its CPU counted.
	if err := d.Shutdown(context.Background()); err != nil {
		return meter.Use{}, err
	}
	return m.Stop(), nil
}

// spin runs rounds of a xorshift generator: work for one CPU that touches
// no memory, and that the compiler cannot drop, since its answer is the
// task's.
func spin(rounds int) uint64 {
	x := uint64(0x9e3779b97f4a7c15)
	for range rounds {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// calibrate returns how many rounds of spin take one millisecond of this
// thread's CPU time: CPU time, not wall time, so that other work on a
// busy machine moves it little. It takes the fastest of five tries.
func calibrate() int {
	rounds := 1 << 16
	for cpuOf(rounds) < 20*time.Millisecond {
		rounds *= 2
	}
	best := time.Duration(1<<63 - 1)
	for range 5 {
		best = min(best, cpuOf(rounds))
	}
	return max(int(int64(rounds)*int64(time.Millisecond)/int64(best)), 1)
}

// sink keeps spin's answers in calibrate alive.
//
//lint:ignore U1000 sink is only written, so that the compiler keeps spin's work
var sink uint64

// cpuOf returns the CPU time rounds of spin take, on one thread.
func cpuOf(rounds int) time.Duration {
	runtime.LockOSThread() // the thread's clock reads one thread
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	sink += spin(rounds)
	return threadCPU() - t0
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_THREAD_CPUTIME_ID): %v", err))
	}
	return time.Duration(ts.Nano())
}
