//go:build linux

package procman_test

// Benchmarks of a fresh child per task, each beside a bare loop that does
// the same with nothing but syscall.ForkExec, pipes and wait4, so that the
// manager's overhead is a ratio measured in one run. Both keep two
// children in flight, as every comparison in bench/ does.
//
//	GORACE= go test -run='^$' -bench=. -count=6 ./procman/ | tee /tmp/bench.txt
//	cd bench && go tool benchstat /tmp/bench.txt
//
// bench/run.sh procman runs them in interleaved rounds and prints one table.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// inFlight is how many children the benchmarks keep alive at once.
const inFlight = 2

const bigAnswer = 64 << 20

func init() {
	// bench-exit exits at once, answering nothing.
	childTasks["bench-exit"] = func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		os.Exit(0)
		return nil
	}
	// bench-answer writes one answer of the size its argument names (8
	// bytes when it names none) and exits.
	childTasks["bench-answer"] = func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		n := 8
		if len(inv.Arg) > 0 {
			if _, err := fmt.Sscan(string(inv.Arg), &n); err != nil {
				return err
			}
		}
		if err := c.Reply(wire.KindAnswer, make([]byte, n)); err != nil {
			return err
		}
		os.Exit(0)
		return nil
	}
}

func benchInvocation(task string, answer int) []byte {
	inv := &wire.Invocation{Task: task, Last: true}
	if answer > 0 {
		inv.Arg = fmt.Append(nil, answer)
	}
	return wire.AppendInvocation(nil, inv)
}

func BenchmarkBareForkExec(b *testing.B) {
	b.Run("StartReap", func(b *testing.B) { bareLoop(b, "bench-exit", 0) })
	b.Run("Answer8", func(b *testing.B) { bareLoop(b, "bench-answer", 8) })
	b.Run("Answer64MiB", func(b *testing.B) {
		b.SetBytes(bigAnswer)
		bareLoop(b, "bench-answer", bigAnswer)
	})
}

func BenchmarkManagerStartReap(b *testing.B) { managerLoop(b, "bench-exit", 0) }

func BenchmarkManagerAnswer8(b *testing.B) { managerLoop(b, "bench-answer", 8) }

func BenchmarkManagerAnswer64MiB(b *testing.B) {
	b.SetBytes(bigAnswer)
	managerLoop(b, "bench-answer", bigAnswer)
}

// cpuMeter measures the CPU time this process and its reaped children
// used over a benchmark's timed part. Wall time on a shared 2-core machine
// swings with whatever else runs; CPU time per child swings much less, and
// the parent's part of it is the manager's own cost.
type cpuMeter struct{ self, children syscall.Rusage }

func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	c := &cpuMeter{}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &c.self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c.children); err != nil {
		b.Fatal(err)
	}
	return c
}

// report adds tasks/s, and the parent's and the children's CPU time per
// child in microseconds.
func (c *cpuMeter) report(b *testing.B) {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(n/s, "tasks/s")
	}
	b.ReportMetric(float64((cpuTime(&self)-cpuTime(&c.self)).Microseconds())/n, "parent-cpu-us/op")
	b.ReportMetric(float64((cpuTime(&children)-cpuTime(&c.children)).Microseconds())/n, "child-cpu-us/op")
}

// bareLoop is the floor the manager is measured against: inFlight
// goroutines, each of which starts the test binary as a child (the cookie
// in its environment, the invocation already in its pipe on fd 3, a
// message pipe on fd 4, a control pipe on fd 5), reads the answer if one
// is expected, and waits for it with wait4. No pidfd, no epoll, no process
// group, no non-blocking I/O: what is left is the cost of a child.
func bareLoop(b *testing.B, task string, answer int) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	env := []string{"PROCRASTINATE_CHILD=" + procman.CookieValue}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROCRASTINATE_CHILD=") {
			env = append(env, kv)
		}
	}
	devnull, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(devnull)
	frame := procman.AppendFrame(nil, procman.FrameInvocation, benchInvocation(task, answer))
	attr := &syscall.ProcAttr{Env: env}
	argv := []string{os.Args[0]}

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, inFlight)
	b.ResetTimer()
	cpu := startCPU(b)
	for w := range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := bareOnce(exe, argv, *attr, devnull, frame, answer); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu.report(b)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

func bareOnce(exe string, argv []string, attr syscall.ProcAttr, devnull int, frame []byte, answer int) error {
	var inv, msg, ctl [2]int
	if err := syscall.Pipe2(inv[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	defer syscall.Close(inv[1])
	if err := syscall.Pipe2(msg[:], syscall.O_CLOEXEC); err != nil {
		syscall.Close(inv[0])
		return err
	}
	defer syscall.Close(msg[0])
	if err := syscall.Pipe2(ctl[:], syscall.O_CLOEXEC); err != nil {
		syscall.Close(inv[0])
		syscall.Close(msg[1])
		return err
	}
	defer syscall.Close(ctl[1])
	attr.Files = []uintptr{uintptr(devnull), 1, 2, uintptr(inv[0]), uintptr(msg[1]), uintptr(ctl[0])}
	pid, err := syscall.ForkExec(exe, argv, &attr)
	syscall.Close(inv[0])
	syscall.Close(msg[1])
	syscall.Close(ctl[0])
	if err != nil {
		return err
	}
	// The frame fits in the pipe: this never blocks. The write ends stay
	// open until the child is reaped: their end is the child's lifeline.
	_, werr := syscall.Write(inv[1], frame)
	var rerr error
	if answer > 0 {
		var p []byte
		var kind procman.Kind
		c, frame, err := procman.ReadFrame(fdReader(msg[0]), 0)
		p, rerr = frame, err
		if rerr == nil && c == procman.FrameReply {
			_, kind, p, rerr = procman.CutNumber(p)
		}
		if rerr == nil && (c != procman.FrameReply || kind != wire.KindAnswer || len(p) != answer) {
			rerr = fmt.Errorf("got a %v frame of kind %d and %d bytes; want an answer of %d", c, kind, len(p), answer)
		}
	}
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case werr != nil:
		return fmt.Errorf("writing the invocation: %w", werr)
	case rerr != nil:
		return fmt.Errorf("reading the answer: %w", rerr)
	case err != nil:
		return fmt.Errorf("wait4: %w", err)
	case !ws.Exited() || ws.ExitStatus() != 0:
		return fmt.Errorf("child %d ended with status %#x", pid, ws)
	}
	return nil
}

// fdReader reads a blocking fd with plain system calls.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// managerLoop starts b.N children through a Manager, inflight at a time,
// all from this goroutine, and checks that each one answered as asked and
// exited with status 0.
func managerLoop(b *testing.B, task string, answer int) {
	m := procman.New()
	if err := m.Setup(); err != nil {
		b.Fatal(err)
	}
	defer m.Teardown()
	spec := procman.Spec{Invocation: benchInvocation(task, answer)}
	h := &benchHandler{answer: answer}
	started := 0
	b.ResetTimer()
	cpu := startCPU(b)
	for {
		for started < b.N && m.ProcessCount() < inFlight && h.err == nil {
			if _, err := m.CreateProcess(spec, h); err != nil {
				b.Fatal(err)
			}
			started++
		}
		if m.ProcessCount() == 0 {
			break
		}
		if err := m.Step(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu.report(b)
	if h.err != nil {
		b.Fatal(h.err)
	}
	if h.exited != b.N || (answer > 0 && h.answers != b.N) {
		b.Fatalf("%d children exited and %d answered; want %d", h.exited, h.answers, b.N)
	}
}

type benchHandler struct {
	answer  int
	answers int
	exited  int
	err     error // the first thing that went wrong
}

func (h *benchHandler) fail(err error) {
	if h.err == nil {
		h.err = err
	}
}

// Reply and Note implement procman.Handler: each records like Message.
func (h *benchHandler) Reply(p *procman.Process, k procman.Kind, payload []byte) {
	h.Message(p, k, payload)
}

func (h *benchHandler) Note(p *procman.Process, k procman.Kind, payload []byte) {
	h.Message(p, k, payload)
}

func (h *benchHandler) Message(p *procman.Process, k procman.Kind, payload []byte) {
	if k != wire.KindAnswer || len(payload) != h.answer {
		h.fail(fmt.Errorf("child %d sent a %v frame of %d bytes; want an answer of %d", p.Pid(), k, len(payload), h.answer))
		return
	}
	h.answers++
}

func (h *benchHandler) Exited(p *procman.Process, e *procman.Exit) {
	h.exited++
	if !e.Success() {
		h.fail(fmt.Errorf("%v", e))
	}
}
