package dispatcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/childenv"
	"github.com/procrastinate-go/procrastinate/internal/frametest"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/seam"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// TestMain is also the child's entry: a child is a fresh start of this
// test binary, and procrastinate.Main runs the task it was started for and
// exits. GORACE is set first, so that children (which inherit it) do not
// sleep a second at exit under -race.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	if dir := os.Getenv(envStartedDir); dir != "" && childenv.IsChild() {
		// A test counts the children started: each leaves a file.
		_ = os.WriteFile(filepath.Join(dir, "started-"+strconv.Itoa(os.Getpid())), nil, 0o644)
	}
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// The tasks of this package's tests. They are defined at package level, so
// that the parent and every child register the same names.
var (
	square = task.Define("dispatcher_test.square", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	})
	nop = task.Define("dispatcher_test.nop", func(ctx context.Context, _ int) (int, error) {
		return 0, nil
	})
	theAnswer = task.Define("dispatcher_test.the-answer", func(ctx context.Context, _ int) (int, error) {
		return 42, nil
	})
	getPid = task.Define("dispatcher_test.getpid", func(ctx context.Context, _ int) (int, error) {
		return os.Getpid(), nil
	})
	writeSuccess = task.Define("dispatcher_test.write-success", func(ctx context.Context, path string) (bool, error) {
		return true, appendTo(path, "success")
	})
	badExit = task.Define("dispatcher_test.bad-exit", func(ctx context.Context, a exitArg) (int, error) {
		if a.File != "" {
			if err := appendTo(a.File, "exit"); err != nil {
				return 0, err
			}
		}
		os.Exit(a.Code)
		return 0, nil
	})
	bigAnswer = task.Define("dispatcher_test.big-answer", func(ctx context.Context, seed int) ([]byte, error) {
		return pattern(seed, bigSize), nil
	})
	fails = task.Define("dispatcher_test.fails", func(ctx context.Context, msg string) (int, error) {
		return 0, errors.New(msg)
	})
	panics = task.Define("dispatcher_test.panics", func(ctx context.Context, msg string) (int, error) {
		return panicDeep(msg), nil
	})
	// hold says that it started (and logs it, when the gate keeps a log),
	// then waits for a token from the gate's release FIFO.
	hold = task.Define("dispatcher_test.hold", func(ctx context.Context, a holdArg) (int, error) {
		if a.IgnoreTerm {
			signal.Ignore(syscall.SIGTERM)
		}
		if err := passGate(ctx, a); err != nil {
			return 0, err
		}
		return os.Getpid(), nil
	})
	// twoAnswers writes an answer frame of its own (7) for its call
	// straight to the message pipe, then returns 42, which the child's
	// loop sends as a second answer. It must be its child's first call
	// (number 1).
	twoAnswers = task.Define("dispatcher_test.two-answers", func(ctx context.Context, _ int) (int, error) {
		seven, err := task.JSON.Marshal(7)
		if err != nil {
			return 0, err
		}
		if _, err := rawFD(messageFD).Write(frametest.Numbered(nil, frametest.Reply, 1, wire.KindAnswer, seven)); err != nil {
			return 0, err
		}
		return 42, nil
	})
	// garbage writes bytes that are not a frame to the message pipe, says
	// that it started, and waits to be killed.
	garbage = task.Define("dispatcher_test.garbage", func(ctx context.Context, a holdArg) (int, error) {
		if _, err := rawFD(messageFD).Write([]byte("\xff\xff\xff\xff\xffthis is not a frame")); err != nil {
			return 0, err
		}
		if err := passGate(ctx, a); err != nil {
			return 0, err
		}
		return 0, nil
	})
	// nested starts a dispatcher of its own, in its child, and schedules
	// work there.
	nested = task.Define("dispatcher_test.nested", func(ctx context.Context, n int) (nestedResult, error) {
		d, err := dispatcher.Start(strategy.Throttled(1))
		if err != nil {
			return nestedResult{}, err
		}
		defer d.Shutdown(context.Background())
		sq, err := square.Schedule(d, n).Value()
		if err != nil {
			return nestedResult{}, err
		}
		pp, err := pidPair.Schedule(d, 0).Value()
		if err != nil {
			return nestedResult{}, err
		}
		return nestedResult{Square: sq, Child: os.Getpid(), Grandchild: pp[0], GrandchildParent: pp[1]}, nil
	})
	// checksum returns the length and CRC-32 of its argument.
	checksum = task.Define("dispatcher_test.checksum", func(ctx context.Context, b []byte) ([2]uint32, error) {
		return [2]uint32{uint32(len(b)), crc32.ChecksumIEEE(b)}, nil
	})
	// startSleeper starts "sleep 60" (in its own process group, which it
	// leads), writes the sleeper's pid to the gate's log, says it started,
	// and waits at the gate.
	startSleeper = task.Define("dispatcher_test.start-sleeper", func(ctx context.Context, a holdArg) (int, error) {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		if err := appendTo(filepath.Join(a.Dir, "log"), strconv.Itoa(cmd.Process.Pid)); err != nil {
			return 0, err
		}
		if err := passGate(ctx, a); err != nil {
			return 0, err
		}
		return 0, cmd.Wait()
	})
	pidPair = task.Define("dispatcher_test.pid-pair", func(ctx context.Context, _ int) ([2]int, error) {
		return [2]int{os.Getpid(), os.Getppid()}, nil
	})
)

type exitArg struct {
	File string // where to write "exit" first; empty: nowhere
	Code int
}

type holdArg struct {
	Dir        string // the gate's directory
	Log        bool   // append "start <pid>" and "end <pid>" to the gate's log
	WatchCtx   bool   // give up waiting when the task's context ends
	IgnoreTerm bool   // ignore SIGTERM (signal.Ignore) before saying it started
}

type nestedResult struct {
	Square           int
	Child            int // the pid of the task that started the dispatcher
	Grandchild       int // the pid of the task its dispatcher ran
	GrandchildParent int // the grandchild's parent pid
}

// messageFD is the child's end of its message pipe (see procman).
const messageFD = 4

// rawFD writes to a file descriptor without an *os.File, whose finalizer
// would close the fd that the child's own loop still writes to.
type rawFD int

func (fd rawFD) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Write(int(fd), p[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// panicDeep is the function whose name a panic's stack must show.
//
//go:noinline
func panicDeep(msg string) int {
	panic(msg)
}

const bigSize = 64 << 10

// pattern returns n bytes that depend on seed, so that a mixed-up or
// damaged answer shows.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func appendTo(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// A gate holds tasks in their children until the test lets them go,
// without sleeping anywhere: a task writes one byte to the gate's
// "started" FIFO when it begins, and then reads one byte (a token) from
// its "release" FIFO. The test holds both FIFOs open for reading and
// writing, so that neither side's open blocks and neither sees an end of
// file while the gate is open.
type gate struct {
	dir     string
	started *os.File
	release *os.File
}

func newGate(t *testing.T) *gate {
	t.Helper()
	g := &gate{dir: t.TempDir()}
	for _, name := range []string{"started", "release"} {
		require.NoError(t, syscall.Mkfifo(filepath.Join(g.dir, name), 0o600))
	}
	var err error
	g.started, err = os.OpenFile(filepath.Join(g.dir, "started"), os.O_RDWR, 0)
	require.NoError(t, err)
	g.release, err = os.OpenFile(filepath.Join(g.dir, "release"), os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(g.close)
	return g
}

// arg is the argument of a hold task at this gate.
func (g *gate) arg() holdArg { return holdArg{Dir: g.dir} }

// close closes the gate: a task still waiting at it gets an end of file
// and fails. Calling it again does nothing.
func (g *gate) close() {
	g.started.Close()
	g.release.Close()
}

// waitStarted waits until n more tasks have started at the gate.
func (g *gate) waitStarted(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, g.started.SetReadDeadline(time.Now().Add(20*time.Second)))
	buf := make([]byte, n)
	got, err := io.ReadFull(g.started, buf)
	require.NoError(t, err, "waiting for %d tasks to start at the gate, %d did", n, got)
}

// startedInTime schedules a call with each timeout in turn until its task
// starts at the gate before the call's deadline, and returns that call,
// its timeout and when it was scheduled. On a loaded machine (the race
// detector, other packages' tests beside this one) a child can take
// longer to start than a short timeout: such a call ends before its task
// reaches the gate, or its task reaches it late, and it proves nothing
// about a running task's timeout. It is awaited and tried again with the
// next, longer timeout.
func startedInTime[T any](t *testing.T, g *gate, schedule func(timeout time.Duration) *result.Result[T], timeouts ...time.Duration) (*result.Result[T], time.Duration, time.Time) {
	t.Helper()
	for _, timeout := range timeouts {
		began := time.Now()
		r := schedule(timeout)
		started := g.startedBefore(t, r.Done())
		if started && time.Since(began) < timeout {
			return r, timeout, began
		}
		_, err := awaitWithin(t, r, 30*time.Second, "a call with a timeout of %v", timeout)
		t.Logf("a call with a timeout of %v did not start in time (started at the gate: %v; %v): trying a longer timeout", timeout, started, err)
	}
	t.Fatalf("no call with the timeouts %v started at the gate before its deadline", timeouts)
	return nil, 0, time.Time{}
}

// startedBefore waits until one more task has started at the gate, and
// reports true, or until done is closed first, and reports false.
func (g *gate) startedBefore(t *testing.T, done <-chan struct{}) bool {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	b := make([]byte, 1)
	for time.Now().Before(deadline) {
		ended := false
		select {
		case <-done:
			ended = true // one more read: the task may have passed the gate just before it ended
		default:
		}
		require.NoError(t, g.started.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
		n, err := g.started.Read(b)
		if n == 1 {
			return true
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			require.NoError(t, err, "reading the gate")
		}
		if ended {
			return false
		}
	}
	t.Fatal("no task started at the gate, and the call did not end, within 20s")
	return false
}

// open lets n tasks through the gate.
func (g *gate) open(t *testing.T, n int) {
	t.Helper()
	_, err := g.release.Write(bytes.Repeat([]byte{'.'}, n))
	require.NoError(t, err)
}

// log returns the lines that tasks with Log set wrote.
func (g *gate) log(t *testing.T) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(readFile(t, filepath.Join(g.dir, "log"))), "\n")
}

// passGate is the child's side of a gate.
func passGate(ctx context.Context, a holdArg) error {
	logf := func(what string) error {
		if !a.Log {
			return nil
		}
		return appendTo(filepath.Join(a.Dir, "log"), fmt.Sprintf("%s %d\n", what, os.Getpid()))
	}
	if err := logf("start"); err != nil {
		return err
	}
	// Non-blocking, so that a closed gate (no reader) is an error and not
	// a hang.
	started, err := os.OpenFile(filepath.Join(a.Dir, "started"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	_, err = started.Write([]byte{'s'})
	started.Close()
	if err != nil {
		return err
	}
	release, err := os.OpenFile(filepath.Join(a.Dir, "release"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer release.Close()
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(release, make([]byte, 1))
		got <- err
	}()
	if a.WatchCtx {
		select {
		case err = <-got:
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		err = <-got
	}
	if err != nil {
		return fmt.Errorf("waiting at the gate: %w", err)
	}
	return logf("end")
}

// checkLeaks makes the test end with the leak checks: no child, zombie
// or fd of the test left (internal/leakcheck), and no goroutine (goleak).
// Call it first thing in a test that starts a dispatcher.
func checkLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t)
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// start starts a dispatcher and makes sure that the test closes it, even
// when it fails half-way.
func start(t *testing.T, s strategy.Strategy, opts ...dispatcher.Option) *dispatcher.Dispatcher {
	t.Helper()
	d, err := dispatcher.Start(s, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// shutdown shuts d down, letting its work finish, and checks that nothing
// of it is left at once: the snapshot s was taken before d started, and
// whatever else the test opened since is closed by now.
func shutdown(t *testing.T, d *dispatcher.Dispatcher, s *leakcheck.Snapshot) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx))
	if s != nil {
		require.NoError(t, s.Leaks(0), "after Shutdown returned")
	}
}

// waitBlockedIn waits until a goroutine is blocked (in a select or a
// channel receive) inside the function fn, for instance
// "(*Dispatcher).Join": the call has registered with the
// dispatcher and is now waiting.
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if strings.Contains(g, fn+"(") && (strings.Contains(header, "[select") || strings.Contains(header, "[chan receive")) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine blocked in %s after 20s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}

// probe wraps a strategy (or none: a probe without one spawns nothing),
// counts its Steps and Spawns, and records what each Step saw.
type probe struct {
	inner strategy.Strategy

	steps  atomic.Int64
	spawns atomic.Int64

	mu      sync.Mutex
	before  []poolState // before each Step
	seen    []poolState // after each Step
	changed chan struct{}
}

type poolState struct{ Queued, Children, Idle int }

func newProbe(inner strategy.Strategy) *probe {
	return &probe{inner: inner, changed: make(chan struct{}, 1)}
}

// Policy returns the wrapped strategy's policy, or the zero one.
func (s *probe) Policy() strategy.Policy {
	if s.inner == nil {
		return strategy.Policy{}
	}
	return s.inner.Policy()
}

func (s *probe) Step(p strategy.Pool) {
	s.steps.Add(1)
	s.mu.Lock()
	s.before = append(s.before, poolState{p.Queued(), p.Children(), p.Idle()})
	s.mu.Unlock()
	if s.inner != nil {
		s.inner.Step(countingPool{p, s})
	}
	s.mu.Lock()
	s.seen = append(s.seen, poolState{p.Queued(), p.Children(), p.Idle()})
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until a Step has seen a pool state for which ok is true,
// and returns that state.
func (s *probe) waitFor(t *testing.T, what string, ok func(poolState) bool) poolState {
	t.Helper()
	return s.waitForSince(t, 0, what, ok)
}

// mark returns the number of Steps recorded so far, for waitForSince.
func (s *probe) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// waitForSince is waitFor that looks only at the Steps after the first
// from.
func (s *probe) waitForSince(t *testing.T, from int, what string, ok func(poolState) bool) poolState {
	t.Helper()
	timeout := time.After(20 * time.Second)
	next := from
	for {
		s.mu.Lock()
		seen := s.seen[next:]
		next = len(s.seen)
		s.mu.Unlock()
		for _, st := range seen {
			if ok(st) {
				return st
			}
		}
		select {
		case <-s.changed:
		case <-timeout:
			t.Fatalf("no Step saw %s in 20s", what)
		}
	}
}

// maxChildren returns the most children a Step has seen.
func (s *probe) maxChildren() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, st := range s.seen {
		m = max(m, st.Children)
	}
	return m
}

type countingPool struct {
	strategy.Pool
	s *probe
}

func (p countingPool) Spawn() error {
	p.s.spawns.Add(1)
	return p.Pool.Spawn()
}

// syncBuffer is a log sink that the dispatcher's goroutine writes and the
// test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// renaming is a Scheduler that hands its call to next under another task
// name, and keeps it: the way to have a child run a task it does not know.
type renaming struct {
	to   string
	next task.Scheduler
	call *task.Call
}

func (r *renaming) Submit(c *task.Call) {
	c.Task = r.to
	r.call = c
	r.next.Submit(c)
}

// procmanOptions passes opts to a dispatcher's process manager, through
// the seam that the module's tests have to settings that are not public.
func procmanOptions(opts ...procman.Option) dispatcher.Option {
	return seam.ProcmanOptions(opts...).(dispatcher.Option)
}

// lockDirOf returns the path of d's lock directory.
func lockDirOf(d *dispatcher.Dispatcher) string { return seam.LockDir(d) }
