package dispatcher_test

// Children's stderr: a writer that blocks holds nothing up, each line
// passed on names its child, and a crash's error names its cause.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// noisy writes a.Lines lines of a.Width bytes (the newline included)
	// to its stderr, then a.Last as a line of its own if it is not empty,
	// and returns a.Lines.
	noisy = task.Define("dispatcher_test.stderr.noisy", func(ctx context.Context, a noisyArg) (int, error) {
		w := bufio.NewWriterSize(rawFD(2), 64<<10)
		line := []byte(strings.Repeat("n", max(a.Width-1, 0)) + "\n")
		for range a.Lines {
			if _, err := w.Write(line); err != nil {
				return 0, err
			}
		}
		if a.Last != "" {
			if _, err := fmt.Fprintln(w, a.Last); err != nil {
				return 0, err
			}
		}
		return a.Lines, w.Flush()
	})
	// fragments writes n lines "line <i> of <pid>" to its stderr, each in
	// three writes (system calls) of its own, then "the end of <pid>"
	// without a newline.
	fragments = task.Define("dispatcher_test.stderr.fragments", func(ctx context.Context, n int) (int, error) {
		pid := os.Getpid()
		for i := range n {
			for _, piece := range []string{"line ", fmt.Sprintf("%d of ", i), fmt.Sprintf("%d\n", pid)} {
				if _, err := rawFD(2).Write([]byte(piece)); err != nil {
					return 0, err
				}
			}
		}
		_, err := rawFD(2).Write([]byte(fmt.Sprintf("the end of %d", pid)))
		return n, err
	})
	// goroutinePanic starts a goroutine that panics with msg, and waits
	// for its context to end: the panic ends the child first.
	goroutinePanic = task.Define("dispatcher_test.stderr.goroutine-panic", func(ctx context.Context, msg string) (int, error) {
		go panicInGoroutine(msg)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// fatalUnlock writes a line that looks like a panic but is only a log
	// line, then unlocks a mutex that is not locked: a fatal error of the
	// Go runtime, which no recover catches.
	fatalUnlock = task.Define("dispatcher_test.stderr.fatal-unlock", func(ctx context.Context, _ int) (int, error) {
		if _, err := rawFD(2).Write([]byte("panic: this line is only a log line\n\n")); err != nil {
			return 0, err
		}
		var mu sync.Mutex
		mu.Unlock() //nolint:staticcheck // the fatal error is the point
		return 0, nil
	})
)

type noisyArg struct {
	Lines, Width int
	Last         string
}

// panicInGoroutine is the function whose name the goroutine's stack must
// show.
//
//go:noinline
func panicInGoroutine(msg string) {
	panic(msg)
}

// A writer that takes nothing (a pipe that nobody reads) holds up neither
// the children nor the dispatcher: the tasks that write to stderr finish,
// a timeout fires, no-ops beside them run, and Close returns. What could
// not be written is dropped and counted.
func TestABlockedStderrHoldsNothingUp(t *testing.T) {
	checkLeaks(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	var log syncBuffer
	d, err := dispatcher.Start(strategy.Throttled(6),
		dispatcher.WithStderr(w),
		dispatcher.WithGracePeriod(100*time.Millisecond),
		dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})))
	require.NoError(t, err)
	ended := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-ended:
		default:
			// The dispatcher is stuck in the write: let it go, so that
			// the test ends with the failure that it reported.
			go func() { _, _ = io.Copy(io.Discard, r) }()
			_ = d.Close()
		}
	})

	loud := make([]*result.Result[int], 3)
	for i := range loud {
		loud[i] = noisy.Schedule(d, noisyArg{Lines: 16 << 10, Width: 64})
	}
	timed := hold.Schedule(d, newGate(t).arg(), task.WithTimeout(time.Second))
	nops := make([]*result.Result[int], 5)
	for i := range nops {
		nops[i] = nop.Schedule(d, i)
	}
	for i, f := range loud {
		v, err := awaitWithin(t, f, 20*time.Second, "noisy task %d", i)
		require.NoError(t, err, "noisy task %d", i)
		require.Equal(t, 16<<10, v, "noisy task %d", i)
	}
	_, err = awaitWithin(t, timed, 20*time.Second, "the task with a 1s timeout")
	// Its child may not have started within the second on a loaded
	// machine: then it never started, and the timeout fired all the same.
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce, "the task with a 1s timeout: %v", err)
	requireCancel(t, err, hold.Name(), context.DeadlineExceeded, ce.Started)
	for i, f := range nops {
		_, err := awaitWithin(t, f, 20*time.Second, "no-op %d", i)
		require.NoError(t, err, "no-op %d", i)
	}
	require.Positive(t, d.Stats().StderrDropped, "Stats().StderrDropped after 3 MiB of stderr into a pipe that nobody reads")

	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return in 20s with a blocked stderr writer")
	}
	close(ended)
	// The writer goroutine ended with the dispatcher, though its pipe is
	// still full and still open.
	goleak.VerifyNone(t)
	require.Contains(t, log.String(), "children's stderr dropped", "the log says that stderr was dropped")
}

// awaitWithin is await with a bound of its own and a name for the future.
func awaitWithin[T any](t *testing.T, r *result.Result[T], wait time.Duration, what string, args ...any) (T, error) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(wait):
		t.Fatalf("%s did not resolve in %v", fmt.Sprintf(what, args...), wait)
	}
	return r.Value()
}

// When the writer takes bytes again, the stream says how many were
// dropped, before the next line that was not.
func TestDroppedStderrIsReportedInTheStream(t *testing.T) {
	checkLeaks(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	d := start(t, strategy.Throttled(2), dispatcher.WithStderr(w))
	// Runs before start's Close: a dispatcher stuck in the write gets
	// going again, so that the test ends with the failure it reported.
	t.Cleanup(func() { go func() { _, _ = io.Copy(io.Discard, r) }() })
	for i, f := range []*result.Result[int]{
		noisy.Schedule(d, noisyArg{Lines: 16 << 10, Width: 64}),
		noisy.Schedule(d, noisyArg{Lines: 16 << 10, Width: 64}),
	} {
		_, err := awaitWithin(t, f, 20*time.Second, "noisy task %d", i)
		require.NoError(t, err)
	}
	dropped := d.Stats().StderrDropped
	require.Positive(t, dropped, "Stats().StderrDropped after 2 MiB of stderr into a pipe that nobody reads")

	// Read the pipe from now on, until the marker line comes.
	const marker = "the first line after the drop"
	type seen struct {
		notice string // the drop notice, if it came before the marker
		err    error
	}
	found := make(chan seen, 1)
	go func() {
		var s seen
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "procrastinate: ") && strings.Contains(line, "dropped") {
				s.notice = line
			}
			if strings.HasSuffix(line, "] "+marker) {
				found <- s
				return
			}
		}
		s.err = fmt.Errorf("the stream ended without the marker line: %v", sc.Err())
		found <- s
	}()
	_, err = awaitWithin(t, noisy.Schedule(d, noisyArg{Last: marker}), 20*time.Second, "the quiet task")
	require.NoError(t, err)
	var s seen
	select {
	case s = <-found:
	case <-time.After(20 * time.Second):
		t.Fatal("the marker line did not come through the pipe in 20s")
	}
	require.NoError(t, s.err)
	m := regexp.MustCompile(`^procrastinate: (\d+) bytes of children's stderr dropped`).FindStringSubmatch(s.notice)
	require.NotNil(t, m, "the line before the marker = %q; want the drop notice", s.notice)
	n, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	require.True(t, n > 0 && n <= dropped, "the notice says %d bytes; want 1 to %d (StderrDropped)", n, dropped)
	shutdown(t, d, nil)
}

// Every line passed on from a child's stderr begins with its task and its
// pid, and no line is cut by another child's: children that write their
// lines in pieces, side by side, each get whole lines of their own. A last
// line without a newline comes out whole when the child ends.
func TestStderrLinesNameTheirChild(t *testing.T) {
	checkLeaks(t)
	var all syncBuffer
	d := start(t, strategy.Throttled(3), dispatcher.WithStderr(&all))
	const n = 300
	fs := make([]*result.Result[int], 3)
	for i := range fs {
		fs[i] = fragments.Schedule(d, n)
	}
	for i, f := range fs {
		_, err := await(t, f)
		require.NoError(t, err, "task %d", i)
	}
	shutdown(t, d, nil)

	lineRE := regexp.MustCompile(`^\[` + regexp.QuoteMeta(fragments.Name()) + ` (\d+)\] (?:line (\d+) of (\d+)|the end of (\d+))$`)
	next := map[string]int{} // pid: the next line's number
	ends := map[string]bool{}
	out := strings.TrimSuffix(all.String(), "\n")
	for _, line := range strings.Split(out, "\n") {
		m := lineRE.FindStringSubmatch(line)
		require.NotNil(t, m, "line %q; want \"[%s <pid>] line <i> of <pid>\" or \"... the end of <pid>\"", line, fragments.Name())
		if m[4] != "" {
			require.Equal(t, m[1], m[4], "line %q: the prefix's pid", line)
			require.Equal(t, n, next[m[1]], "child %s ended after %d lines; want %d", m[1], next[m[1]], n)
			ends[m[1]] = true
			continue
		}
		require.Equal(t, m[1], m[3], "line %q: the prefix's pid", line)
		require.Equal(t, strconv.Itoa(next[m[1]]), m[2], "line %q: want line %d of child %s", line, next[m[1]], m[1])
		next[m[1]]++
	}
	require.Len(t, ends, 3, "the last lines (without a newline) of 3 children; got %v", ends)
}

// A panic in a goroutine that the task started kills the child: its future
// fails with a *result.ChildDeath (not a *result.TaskError) whose Cause is
// the panic line and whose Stack is the panicking goroutine's.
func TestAPanicInATasksGoroutineIsAChildDeath(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1), dispatcher.WithStderr(nil))
	_, err := await(t, goroutinePanic.Schedule(d, "boom in a goroutine"))
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death, "err = %v; want a *result.ChildDeath", err)
	var te *result.TaskError
	require.NotErrorAs(t, err, &te, "a panic outside the task's own goroutine is no *result.TaskError")
	require.Equal(t, 2, death.ExitCode, "the Go runtime exits with 2 after a panic; err = %v", err)
	t.Logf("Error() = %v", err)
	require.Equal(t, "panic: boom in a goroutine", death.Cause)
	require.Contains(t, err.Error(), `"panic: boom in a goroutine"`, "Error() names the cause")
	require.Regexp(t, `^goroutine \d+ \[running\]:\n`, death.Stack, "Stack begins with the panicking goroutine's header")
	require.Contains(t, death.Stack, "panicInGoroutine(", "Stack shows the function that panicked")
	require.Contains(t, death.Stack, "created by ", "Stack ends with the goroutine's creator")
	shutdown(t, d, nil)
}

// A fatal error of the Go runtime ends with a stack, which is all the end
// of stderr shows; the error names the line that says what went wrong, the
// one of the last crash (a log line that looks like a panic is not it),
// also when the tail kept is too short to hold it.
func TestAFatalErrorNamesItsCause(t *testing.T) {
	for _, tail := range []int{64 << 10, 64} {
		t.Run(fmt.Sprintf("tail %d", tail), func(t *testing.T) {
			checkLeaks(t)
			d := start(t, strategy.Throttled(1), dispatcher.WithStderr(nil), dispatcher.WithStderrTail(tail))
			_, err := await(t, fatalUnlock.Schedule(d, 0))
			var death *result.ChildDeath
			require.ErrorAs(t, err, &death, "err = %v; want a *result.ChildDeath", err)
			require.Equal(t, 2, death.ExitCode, "err = %v", err)
			require.Equal(t, "fatal error: sync: unlock of unlocked mutex", death.Cause, "err = %v", err)
			require.Contains(t, err.Error(), `"fatal error: sync: unlock of unlocked mutex"`, "Error() names the cause")
			require.NotContains(t, err.Error(), "only a log line")
			require.Contains(t, death.Stack, "goroutine ", "Stack; err = %v", err)
			shutdown(t, d, nil)
		})
	}
}

// A stderr that the Go runtime's poller does not hold (a blocking pipe, as
// the parent's own stderr usually is, or a terminal) cannot be given a
// deadline; the dispatcher writes to a non-blocking copy of it instead, so
// that Close cuts a stuck write short and leaves no goroutine behind.
func TestABlockingStderrLeavesNothingBehind(t *testing.T) {
	checkLeaks(t)
	var fds [2]int
	require.NoError(t, syscall.Pipe(fds[:])) // blocking, unlike os.Pipe
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	r, w := os.NewFile(uintptr(fds[0]), "blocking-r"), os.NewFile(uintptr(fds[1]), "blocking-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	require.ErrorIs(t, w.SetWriteDeadline(time.Now()), os.ErrNoDeadline, "the test needs a writer without deadlines")
	d, err := dispatcher.Start(strategy.Throttled(2), dispatcher.WithStderr(w))
	require.NoError(t, err)
	f := noisy.Schedule(d, noisyArg{Lines: 16 << 10, Width: 64})
	_, err = awaitWithin(t, f, 20*time.Second, "the noisy task")
	require.NoError(t, err)
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		go func() { _, _ = io.Copy(io.Discard, r) }()
		t.Fatal("Close did not return in 20s with a blocked stderr writer")
	}
	// Nothing of the dispatcher is left, though the pipe is still full.
	goleak.VerifyNone(t)
	go func() { _, _ = io.Copy(io.Discard, r) }() // let a leaked write end
}
