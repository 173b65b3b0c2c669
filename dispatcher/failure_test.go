package dispatcher_test

// Failure handling: deadlines and cancellation, what a child
// died of, limits, retries, one crash among many, and a parent that dies.
// The chaos test is in chaos_test.go, the fuzz targets in fuzz_test.go,
// the tasks in failure_tasks_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/frametest"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// await is Value that fails the test instead of waiting for ever: every
// future must resolve, and a feature that is missing must fail a test, not
// hang it.
func await[T any](t *testing.T, r *result.Result[T]) (T, error) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the future did not resolve in 30s")
	}
	return r.Value()
}

// requireCancel checks that err is a *result.CancelError of the task
// named name, caused by cause, and that the task started or not as said;
// it returns the error.
func requireCancel(t *testing.T, err error, name string, cause error, started bool) *result.CancelError {
	t.Helper()
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce, "err = %v; want a *result.CancelError", err)
	require.ErrorIs(t, err, cause)
	require.Equal(t, name, ce.Task)
	require.Equal(t, started, ce.Started, "Started; err = %v", err)
	if started {
		require.Positive(t, ce.Pid)
		require.NotEqual(t, os.Getpid(), ce.Pid)
		require.Contains(t, err.Error(), fmt.Sprintf("stopped in child %d", ce.Pid))
	} else {
		require.Zero(t, ce.Pid)
		require.Empty(t, ce.Sent, "nothing is sent to a task that never started")
		require.Contains(t, err.Error(), "never started")
	}
	return ce
}

func TestWithTimeoutEndsTheCallWithACancelError(t *testing.T) {
	t.Run("a task that watches its context", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(20*time.Second))
		r, timeout, began := startedInTime(t, g, func(timeout time.Duration) *result.Result[int] {
			return waitCtx.Schedule(d, g.dir, task.WithTimeout(timeout))
		}, time.Second, 4*time.Second)
		_, err := await(t, r)
		took := time.Since(began)
		ce := requireCancel(t, err, waitCtx.Name(), context.DeadlineExceeded, true)
		// Two ends are possible, and both are right. The task's context
		// in the child carries the deadline, so the task may see it and
		// answer before the dispatcher's timer fires: then nothing was
		// sent (child.Message turns a failure after the deadline into a
		// CancelError). Or the timer fires first: SIGTERM, which ends
		// the task's context. Never SIGKILL: the grace period is long.
		if len(ce.Sent) > 0 {
			require.Equal(t, []syscall.Signal{syscall.SIGTERM}, ce.Sent)
			require.Contains(t, err.Error(), "sent it terminated (signal 15)")
		}
		require.GreaterOrEqual(t, took, timeout)
		require.Less(t, took, timeout+10*time.Second, "the grace period of 20s must not have passed")
		t.Logf("resolved %v after Schedule; sent %v", took, ce.Sent)
		shutdown(t, d, nil)
	})
	t.Run("a task that only watches SIGTERM gets SIGTERM", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(20*time.Second))
		r, _, _ := startedInTime(t, g, func(timeout time.Duration) *result.Result[int] {
			// What a late try that ended before this one got.
			require.NoError(t, os.RemoveAll(filepath.Join(g.dir, "signal")))
			return waitSignal.Schedule(d, signalArg{Dir: g.dir, Signals: []syscall.Signal{syscall.SIGTERM}}, task.WithTimeout(timeout))
		}, 500*time.Millisecond, 2*time.Second, 8*time.Second)
		_, err := await(t, r)
		ce := requireCancel(t, err, waitSignal.Name(), context.DeadlineExceeded, true)
		require.Equal(t, []syscall.Signal{syscall.SIGTERM}, ce.Sent)
		require.Equal(t, "terminated", readFile(t, filepath.Join(g.dir, "signal")), "what the task got")
		shutdown(t, d, nil)
	})
	t.Run("a task that ignores SIGTERM gets SIGKILL after the grace period", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		const grace = 300 * time.Millisecond
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(grace))
		arg := g.arg()
		arg.IgnoreTerm = true
		r, timeout, began := startedInTime(t, g, func(timeout time.Duration) *result.Result[int] {
			return hold.Schedule(d, arg, task.WithTimeout(timeout))
		}, 500*time.Millisecond, 2*time.Second, 8*time.Second)
		_, err := await(t, r)
		require.GreaterOrEqual(t, time.Since(began), timeout+grace, "SIGKILL came before the grace period was over")
		ce := requireCancel(t, err, hold.Name(), context.DeadlineExceeded, true)
		require.Equal(t, []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}, ce.Sent)
		require.Contains(t, err.Error(), "sent it terminated (signal 15), then killed (signal 9)")
		var death *result.ChildDeath
		require.NotErrorAs(t, err, &death, "a stopped task is a CancelError, not a ChildDeath")
		shutdown(t, d, nil)
	})
	t.Run("a deadline that passed before Schedule", func(t *testing.T) {
		checkLeaks(t)
		p := newProbe(strategy.Throttled(1))
		d := start(t, p)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		for _, r := range []*result.Result[int]{
			marker.Schedule(d, filepath.Join(t.TempDir(), "never"), task.WithTimeout(-time.Second)),
			marker.Schedule(d, filepath.Join(t.TempDir(), "never"), task.WithContext(ctx)),
		} {
			_, err := await(t, r)
			requireCancel(t, err, marker.Name(), context.DeadlineExceeded, false)
		}
		shutdown(t, d, nil)
		require.Zero(t, p.spawns.Load(), "a child was started for a task whose deadline had passed")
	})
}

func TestAnEndedCallContextEndsTheCallWithACancelError(t *testing.T) {
	t.Run("cancel while running", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(20*time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := waitCtx.Schedule(d, g.dir, task.WithContext(ctx))
		g.waitStarted(t, 1)
		require.False(t, r.Ready())
		began := time.Now()
		cancel()
		_, err := await(t, r)
		ce := requireCancel(t, err, waitCtx.Name(), context.Canceled, true)
		// The child's context has no deadline here: only SIGTERM could
		// have ended the task, and it did, long before SIGKILL.
		require.Equal(t, []syscall.Signal{syscall.SIGTERM}, ce.Sent)
		require.Less(t, time.Since(began), 10*time.Second)
		shutdown(t, d, nil)
	})
	t.Run("a queued task whose context ends never starts", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		p := newProbe(strategy.Throttled(1))
		d := start(t, p)
		blocker := hold.Schedule(d, g.arg())
		g.waitStarted(t, 1)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		never := filepath.Join(t.TempDir(), "never")
		queued := marker.Schedule(d, never, task.WithContext(ctx))
		p.waitFor(t, "the marker task queued", func(s poolState) bool { return s.Queued == 1 })
		cancel()
		_, err := await(t, queued)
		requireCancel(t, err, marker.Name(), context.Canceled, false)
		require.False(t, blocker.Ready(), "the blocker is still held: the slot never freed")

		g.open(t, 1)
		_, err = await(t, blocker)
		require.NoError(t, err)
		// Work scheduled after it runs: the slot was not lost.
		v, err := square.Schedule(d, 4).Value()
		require.NoError(t, err)
		require.Equal(t, 16, v)
		shutdown(t, d, nil)
		require.NoFileExists(t, never, "the cancelled task ran")
		require.EqualValues(t, 2, p.spawns.Load(), "children: the blocker's and the square's")
	})
	t.Run("a context cancelled before Schedule", func(t *testing.T) {
		checkLeaks(t)
		p := newProbe(strategy.Throttled(1))
		d := start(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		never := filepath.Join(t.TempDir(), "never")
		r := marker.Schedule(d, never, task.WithContext(ctx))
		select {
		case <-r.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a task with a cancelled context did not resolve")
		}
		requireCancel(t, r.Err(), marker.Name(), context.Canceled, false)
		shutdown(t, d, nil)
		require.Zero(t, p.spawns.Load())
		require.NoFileExists(t, never)
	})
	t.Run("WithTermSignal sets the first signal", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithTermSignal(syscall.SIGINT), dispatcher.WithGracePeriod(20*time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := waitSignal.Schedule(d, signalArg{Dir: g.dir, Signals: []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}}, task.WithContext(ctx))
		g.waitStarted(t, 1)
		cancel()
		_, err := await(t, r)
		ce := requireCancel(t, err, waitSignal.Name(), context.Canceled, true)
		require.Equal(t, []syscall.Signal{syscall.SIGINT}, ce.Sent)
		require.Equal(t, "interrupt", readFile(t, filepath.Join(g.dir, "signal")))
		shutdown(t, d, nil)
	})
	t.Run("a context that ends after the answer changes nothing", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1))
		ctx, cancel := context.WithCancel(context.Background())
		r := square.Schedule(d, 6, task.WithContext(ctx))
		v, err := await(t, r)
		cancel()
		require.NoError(t, err)
		require.Equal(t, 36, v)
		v, err = square.Schedule(d, 7).Value()
		require.NoError(t, err)
		require.Equal(t, 49, v)
		shutdown(t, d, nil)
	})
}

func TestChildDeathSaysWhatHappened(t *testing.T) {
	const size = 100 << 10
	const code = 3
	t.Run("exit code, pid, task, duration, and the tail of stderr", func(t *testing.T) {
		checkLeaks(t)
		var all syncBuffer
		d := start(t, strategy.Throttled(1), dispatcher.WithStderr(&all))
		_, err := await(t, stderrExit.Schedule(d, stderrArg{Size: size, Code: code}))
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		shutdown(t, d, nil)

		want := stderrText(size, death.Pid, code)
		prefix := fmt.Sprintf("[%s %d] ", stderrExit.Name(), death.Pid)
		var got strings.Builder
		for _, line := range strings.SplitAfter(all.String(), "\n") {
			if line == "" {
				continue
			}
			rest, ok := strings.CutPrefix(line, prefix)
			require.True(t, ok, "line %q; want it to begin with %q", line, prefix)
			got.WriteString(rest)
		}
		require.Equal(t, string(want), got.String(), "WithStderr gets all the child wrote, each line after its prefix")
		require.Equal(t, stderrExit.Name(), death.Task)
		require.Positive(t, death.Pid)
		require.NotEqual(t, os.Getpid(), death.Pid)
		require.Equal(t, code, death.ExitCode)
		require.Zero(t, death.Signal)
		require.Positive(t, death.Duration)
		require.Less(t, death.Duration, time.Minute)
		require.NoError(t, death.Err)
		require.Empty(t, death.Limit)
		require.Len(t, death.Stderr, 64<<10, "the default tail is 64 KiB")
		require.True(t, bytes.HasSuffix(want, death.Stderr), "Stderr is the end of what the child wrote")

		msg := err.Error()
		for _, s := range []string{
			fmt.Sprintf("task %q", stderrExit.Name()),
			fmt.Sprintf("child %d died before answering: exited with code %d after ", death.Pid, code),
			"; its stderr ended with: \"",
		} {
			require.Contains(t, msg, s)
		}
		require.True(t, strings.HasSuffix(msg, fmt.Sprintf(`\npid %d exits %d"`, death.Pid, code)), "Error() = %q; want it to end with stderr's last line", msg)
		require.Less(t, len(msg), 600, "Error() quotes only the last lines of stderr: %q", msg)
	})
	t.Run("WithStderrTail(1024)", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithStderrTail(1024), dispatcher.WithStderr(nil))
		_, err := await(t, stderrExit.Schedule(d, stderrArg{Size: size, Code: code}))
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		require.Len(t, death.Stderr, 1024)
		require.True(t, bytes.HasSuffix(stderrText(size, death.Pid, code), death.Stderr))
		shutdown(t, d, nil)
	})
	t.Run("WithStderrTail(0) keeps nothing", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithStderrTail(0))
		// Size 0: one line reaches the test's own stderr.
		_, err := await(t, stderrExit.Schedule(d, stderrArg{Size: 0, Code: code}))
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		require.Nil(t, death.Stderr)
		require.Equal(t, code, death.ExitCode)
		require.NotContains(t, err.Error(), "its stderr ended with")
		shutdown(t, d, nil)
	})
	t.Run("a signal, by number and name", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(2), dispatcher.WithStderr(nil))
		killed := killSelf.Schedule(d, syscall.SIGKILL)
		segv := killSelf.Schedule(d, syscall.SIGSEGV)

		_, err := await(t, killed)
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		require.Equal(t, syscall.SIGKILL, death.Signal)
		require.Equal(t, -1, death.ExitCode)
		require.Contains(t, err.Error(), fmt.Sprintf("child %d died before answering: killed by signal 9 (killed)", death.Pid))

		// The Go runtime catches a SIGSEGV, even one sent with kill: it
		// prints the signal and every goroutine's stack, and exits with
		// status 2. It does not die of the signal (unless GOTRACEBACK=crash
		// tells it to).
		_, err = await(t, segv)
		require.ErrorAs(t, err, &death)
		require.Contains(t, string(death.Stderr), "SIGSEGV: segmentation violation")
		require.True(t, strings.HasPrefix(death.Cause, "SIGSEGV: segmentation violation\n"), "Cause = %q; want the runtime's SIGSEGV lines", death.Cause)
		require.Contains(t, err.Error(), `cause: "SIGSEGV: segmentation violation\n`)
		if os.Getenv("GOTRACEBACK") != "crash" {
			require.Equal(t, 2, death.ExitCode, "err = %v", err)
			require.Zero(t, death.Signal)
			require.Contains(t, err.Error(), "exited with code 2")
		}
		shutdown(t, d, nil)
	})
}

// Every error the library returns works with errors.As and errors.Is, also
// when the caller wraps it once more.
func TestEveryErrorWorksWithErrorsAsAndIsWhenWrapped(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(4),
		dispatcher.WithStderr(nil),
		dispatcher.WithGracePeriod(100*time.Millisecond),
		procmanOptions(procman.WithHangupWait(100*time.Millisecond), procman.WithMaxPayload(64<<10)))
	answer := func(v int) []byte {
		b, err := task.JSON.Marshal(v)
		require.NoError(t, err)
		return b
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	type kinds struct{ task, death, cancel, retry bool }
	for _, tc := range []struct {
		name string
		err  func(t *testing.T) error
		as   kinds
		is   []error // sentinels and causes errors.Is finds
		as2  any     // a further type errors.As finds (a pointer to a pointer), or nil
	}{
		{"returned error", func(t *testing.T) error { _, err := await(t, fails.Schedule(d, "no")); return err },
			kinds{task: true}, nil, nil},
		{"panic", func(t *testing.T) error { _, err := await(t, panics.Schedule(d, "boom")); return err },
			kinds{task: true}, nil, nil},
		{"unknown task", func(t *testing.T) error {
			_, err := await(t, nop.Schedule(&renaming{to: "dispatcher_test.failure.no-such-task", next: d}, 0))
			return err
		}, kinds{task: true}, nil, nil},
		{"os.Exit", func(t *testing.T) error { _, err := await(t, badExit.Schedule(d, exitArg{Code: 4})); return err },
			kinds{death: true}, nil, nil},
		{"signal", func(t *testing.T) error { _, err := await(t, killSelf.Schedule(d, syscall.SIGKILL)); return err },
			kinds{death: true}, nil, nil},
		{"garbage", func(t *testing.T) error {
			_, err := await(t, rawStream.Schedule(d, []byte("\x00\x00\x00\x00\xffnot a frame")))
			return err
		},
			kinds{death: true}, nil, new(*procman.ProtocolError)},
		{"frame over the limit", func(t *testing.T) error {
			_, err := await(t, rawStream.Schedule(d, frametest.Header(nil, frametest.Reply, 1<<20)))
			return err
		}, kinds{death: true}, nil, new(*procman.ProtocolError)},
		{"frame cut by the exit", func(t *testing.T) error {
			_, err := await(t, rawStream.Schedule(d, frametest.Header(nil, frametest.Reply, 100)))
			return err
		}, kinds{death: true}, []error{io.ErrUnexpectedEOF}, new(*procman.ProtocolError)},
		{"hung up", func(t *testing.T) error { _, err := await(t, hangUp.Schedule(d, 0)); return err },
			kinds{death: true}, []error{procman.ErrHungUp}, nil},
		{"an answer that does not decode", func(t *testing.T) error {
			// An empty answer: JSON's decoder meets the end of its input.
			_, err := await(t, rawStream.Schedule(d, frametest.Numbered(nil, frametest.Reply, 1, wire.KindAnswer, nil)))
			return err
		}, kinds{}, nil, new(*json.SyntaxError)},
		{"the second of two answers is ignored", func(t *testing.T) error {
			stream := frametest.Numbered(nil, frametest.Reply, 1, wire.KindAnswer, answer(5))
			stream = frametest.Numbered(stream, frametest.Reply, 1, wire.KindAnswer, answer(6))
			v, err := await(t, rawStream.Schedule(d, stream))
			require.Equal(t, 5, v)
			return err
		}, kinds{}, nil, nil},
		{"timeout", func(t *testing.T) error {
			_, err := await(t, waitCtx.Schedule(d, newGate(t).dir, task.WithTimeout(200*time.Millisecond)))
			return err
		}, kinds{cancel: true}, []error{context.DeadlineExceeded}, nil},
		{"cancelled", func(t *testing.T) error {
			_, err := await(t, square.Schedule(d, 2, task.WithContext(cancelled)))
			return err
		}, kinds{cancel: true}, []error{context.Canceled}, nil},
		{"retried", func(t *testing.T) error {
			_, err := await(t, badExit.Schedule(d, exitArg{Code: 6}, task.WithRetries(1, time.Millisecond)))
			return err
		}, kinds{death: true, retry: true}, nil, nil},
		{"nil dispatcher", func(t *testing.T) error { _, err := await(t, square.Schedule(nil, 2)); return err },
			kinds{}, []error{task.ErrNilScheduler}, nil},
		{"killed by Close", func(t *testing.T) error {
			g := newGate(t)
			d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(50*time.Millisecond))
			r := hold.Schedule(d, g.arg())
			g.waitStarted(t, 1)
			require.NoError(t, d.Close())
			_, err := await(t, r)
			return err
		}, kinds{death: true}, []error{dispatcher.ErrKilled}, nil},
		{"queued at Close", func(t *testing.T) error {
			g := newGate(t)
			d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(50*time.Millisecond))
			hold.Schedule(d, g.arg())
			r := square.Schedule(d, 2)
			g.waitStarted(t, 1)
			require.NoError(t, d.Close())
			_, err := await(t, r)
			return err
		}, kinds{}, []error{dispatcher.ErrClosed}, nil},
		{"after Shutdown", func(t *testing.T) error {
			d := start(t, strategy.Throttled(1))
			require.NoError(t, d.Shutdown(context.Background()))
			_, err := await(t, square.Schedule(d, 2))
			return err
		}, kinds{}, []error{dispatcher.ErrClosed}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			if tc.as == (kinds{}) && tc.is == nil && tc.as2 == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range []error{err, fmt.Errorf("the caller's own wrapping: %w", err)} {
				for _, as := range []struct {
					want   bool
					target any
				}{
					{tc.as.task, new(*result.TaskError)},
					{tc.as.death, new(*result.ChildDeath)},
					{tc.as.cancel, new(*result.CancelError)},
					{tc.as.retry, new(*result.RetryError)},
				} {
					if as.want {
						require.ErrorAs(t, e, as.target)
					} else {
						require.NotErrorAs(t, e, as.target)
					}
				}
				for _, want := range tc.is {
					require.ErrorIs(t, e, want)
				}
				if tc.as2 != nil {
					require.ErrorAs(t, e, tc.as2)
				}
				require.NotEmpty(t, e.Error())
			}
		})
	}
	// None of it harmed the dispatcher.
	v, err := await(t, square.Schedule(d, 8))
	require.NoError(t, err)
	require.Equal(t, 64, v)
	shutdown(t, d, nil)
}

// A child that says it retires (it exits after its current answer) and
// then exits without answering has died with its task. Were the task taken
// for one that never started, it would be run again, and again, for ever
// (found by FuzzChildStream).
func TestRetiringWithoutAnAnswerIsADeath(t *testing.T) {
	for _, s := range []strategy.Strategy{strategy.Throttled(1), strategy.Throttled(1, strategy.Reuse(strategy.Unlimited))} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			checkLeaks(t)
			p := newProbe(s)
			d := start(t, p)
			_, err := await(t, rawStream.Schedule(d, frametest.Numbered(nil, frametest.Note, 1, wire.KindRetiring, nil)))
			var death *result.ChildDeath
			require.ErrorAs(t, err, &death)
			require.Zero(t, death.ExitCode)
			require.NoError(t, death.Err)
			v, err := await(t, square.Schedule(d, 5))
			require.NoError(t, err)
			require.Equal(t, 25, v)
			shutdown(t, d, nil)
			require.EqualValues(t, 2, p.spawns.Load(), "the task ran once, and the square once")
		})
	}
}

func TestCallLimitsHoldInTheCallsOwnChild(t *testing.T) {
	t.Run("CPU time", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithStderr(nil))
		// The timeout is a safety net only: RLIMIT_CPU ends the task after
		// one second of CPU.
		_, err := await(t, spin.Schedule(d, 0, task.WithProcess(task.Process{CPUTime: time.Second}), task.WithTimeout(20*time.Second)))
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death, "err = %v", err)
		require.Contains(t, death.Limit, "RLIMIT_CPU")
		require.Contains(t, err.Error(), "(over its CPU time (RLIMIT_CPU) limit)")
		// the task package's child loop catches SIGXCPU, says so, and kills its group.
		require.Equal(t, syscall.SIGKILL, death.Signal)
		require.Contains(t, string(death.Stderr), "CPU time limit exceeded (SIGXCPU)")
		require.Equal(t, fmt.Sprintf("procrastinate: child %d: CPU time limit exceeded (SIGXCPU)", death.Pid), death.Cause, "err = %v", err)
		// Not a bound on Duration: the limit counts the CPU of every
		// thread, and the wall clock may show less than a second.
		require.Less(t, death.Duration, 20*time.Second, "the safety timeout ended it, not the limit")
		shutdown(t, d, nil)
	})
	t.Run("address space", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1), dispatcher.WithStderr(nil))
		// A Go child maps 1.2 to 1.6 GiB of address space before its task
		// runs (2 GiB under -race), most of it reserved and never touched:
		// under a limit of 1 GiB it can map nothing more, and the first
		// large allocation kills it. How it dies depends on the binary: the
		// runtime throws "out of memory" or "cannot allocate memory", a
		// cgo binary may fail to start a thread first, and under -race the
		// race detector fails to map its shadow memory (exit status 66), or
		// the runtime its heap where the race detector needs it ("too many
		// address space collisions"; seen on procman's portable backend,
		// where the child sets the limit on itself as it starts).
		// limitHit knows each of them.
		_, err := await(t, allocate.Schedule(d, 2<<30, task.WithProcess(task.Process{AddressSpace: 1 << 30})))
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death, "err = %v", err)
		t.Logf("exit code %d, signal %v, stderr begins %q", death.ExitCode, death.Signal, firstLine(death.Stderr))
		require.Contains(t, death.Limit, "RLIMIT_AS", "err = %v", err)
		require.Contains(t, err.Error(), "(over its address space (RLIMIT_AS) limit)")
		require.Zero(t, death.Signal)
		require.Contains(t, []int{2, 66}, death.ExitCode, "the Go runtime's fatal errors exit with 2, the race detector's with 66")
		require.Regexp(t, `out of memory|cannot allocate memory|pthread_create failed|ThreadSanitizer failed to allocate|too many address space collisions`, death.Cause, "the cause names the failed mapping; err = %v", err)
		shutdown(t, d, nil)
	})
	t.Run("nice level", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1))
		got, err := await(t, niceLevels.Schedule(d, 0, task.WithProcess(task.Process{Nice: 7})))
		require.NoError(t, err)
		// The raw getpriority system call answers 20 - nice.
		require.Equal(t, 20-7, got.Getpriority, "getpriority(PRIO_PROCESS, 0)")
		require.NotEmpty(t, got.Threads)
		for i, n := range got.Threads {
			require.Equal(t, 7, n, "thread %d of %d: every thread runs at the nice level, not only the main one", i, len(got.Threads))
		}
		// Without a limit the child keeps ours.
		self, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
		require.NoError(t, err)
		got, err = await(t, niceLevels.Schedule(d, 0))
		require.NoError(t, err)
		require.Equal(t, self, got.Getpriority)

		// The parent marks the level in the child's environment
		// (PROCRASTINATE_NICE), for the child to set it on its group again
		// as it takes its first task (procman's
		// TestTheChildSetsItsNiceLevelItself): a thread that the child's
		// runtime was starting as the parent set it could keep the old one
		// (this test saw it once in about twenty runs). A call cannot set
		// the mark itself.
		r := niceLevels.Schedule(d, 0, task.WithProcess(task.Process{Env: []string{"PROCRASTINATE_NICE=19"}}))
		require.True(t, r.Ready(), "refused at the call")
		_, err = r.Value()
		require.EqualError(t, err, `dispatcher: task "dispatcher_test.failure.nice": task.Process.Env: PROCRASTINATE_NICE is set by the manager itself; leave it out`)
		// The mark is not passed on to what a task starts.
		_, err = await(t, getenv.Schedule(d, "PROCRASTINATE_NICE", task.WithProcess(task.Process{Nice: 3})))
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Contains(t, te.Message, "PROCRASTINATE_NICE is not set")
		shutdown(t, d, nil)
	})
	t.Run("working directory and environment", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(2))
		dir := t.TempDir()
		const key = "PROCRASTINATE_TEST_EXTRA"
		wd, err := await(t, getwd.Schedule(d, 0, task.WithProcess(task.Process{Dir: dir})))
		require.NoError(t, err)
		require.Equal(t, dir, wd)
		v, err := await(t, getenv.Schedule(d, key, task.WithProcess(task.Process{Env: []string{key + "=forty two"}})))
		require.NoError(t, err)
		require.Equal(t, "forty two", v)
		// An entry replaces a variable that the parent has.
		const ours = "PROCRASTINATE_TEST_OURS"
		t.Setenv(ours, "the parent's")
		v, err = await(t, getenv.Schedule(d, ours, task.WithProcess(task.Process{Env: []string{ours + "=the call's"}})))
		require.NoError(t, err)
		require.Equal(t, "the call's", v)

		// Neither leaks into the next child.
		here, err := os.Getwd()
		require.NoError(t, err)
		wd, err = await(t, getwd.Schedule(d, 0))
		require.NoError(t, err)
		require.Equal(t, here, wd)
		_, err = await(t, getenv.Schedule(d, key))
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Contains(t, te.Message, key+" is not set")

		// A directory that does not exist fails the start of the child,
		// and the future with it.
		_, err = await(t, getwd.Schedule(d, 0, task.WithProcess(task.Process{Dir: filepath.Join(dir, "missing")})))
		var se *procman.StartError
		require.ErrorAs(t, err, &se)
		require.ErrorIs(t, err, syscall.ENOENT)
		shutdown(t, d, nil)
	})
	// A call whose child cannot start fails, and the call queued behind it
	// starts without waiting for anything else to happen: the strategy
	// stops spawning for a step at an error, and that step must not be
	// the last one.
	t.Run("a call whose child cannot start holds up no other", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1))
		g := newGate(t)
		held := hold.Schedule(d, g.arg())
		g.waitStarted(t, 1)
		bad := getwd.Schedule(d, 0, task.WithProcess(task.Process{Dir: filepath.Join(t.TempDir(), "missing")}))
		next := getPid.Schedule(d, 0)
		g.open(t, 1)
		_, err := await(t, held)
		require.NoError(t, err)
		_, err = await(t, bad)
		require.ErrorIs(t, err, syscall.ENOENT)
		_, err = await(t, next)
		require.NoError(t, err)
		shutdown(t, d, nil)
	})
	// A call with limits gets a child of its own, even from a strategy
	// whose children serve any number of tasks, and even when such a
	// child is idle and the strategy is at its limit.
	t.Run("a call with limits never shares a child", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)))
		first, err := await(t, getPid.Schedule(d, 0))
		require.NoError(t, err)
		again, err := await(t, getPid.Schedule(d, 0))
		require.NoError(t, err)
		require.Equal(t, first, again, "Reuse(Unlimited): the idle child takes the next task")

		own, err := await(t, getPid.Schedule(d, 0, task.WithProcess(task.Process{})))
		require.NoError(t, err)
		require.NotEqual(t, first, own, "a call with limits ran in a shared child")
		own2, err := await(t, getPid.Schedule(d, 0, task.WithProcess(task.Process{})))
		require.NoError(t, err)
		require.NotEqual(t, own, own2, "a child started for a call with limits served another")
		require.NotEqual(t, first, own2)
		shutdown(t, d, nil)
	})
	t.Run("a call with limits does not wait behind spares", func(t *testing.T) {
		checkLeaks(t)
		p := newProbe(strategy.Throttled(2, strategy.Spares(2)))
		d := start(t, p)
		p.waitFor(t, "two spares", func(s poolState) bool { return s.Idle == 2 && s.Children == 2 })
		wd, err := await(t, getwd.Schedule(d, 0, task.WithProcess(task.Process{Dir: t.TempDir()})))
		require.NoError(t, err)
		require.NotEmpty(t, wd)
		shutdown(t, d, nil)
	})
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

func TestWithRetriesRetriesOnlyDeadChildren(t *testing.T) {
	t.Run("every try dies", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(2))
		events, cancel := d.Subscribe(1000)
		defer cancel()
		file := filepath.Join(t.TempDir(), "tries")
		const delay = 100 * time.Millisecond
		_, err := await(t, tries.Schedule(d, triesArg{File: file, Die: 100}, task.WithRetries(2, delay)))
		var re *result.RetryError
		require.ErrorAs(t, err, &re, "err = %v", err)
		require.Equal(t, tries.Name(), re.Task)
		require.Len(t, re.Deaths, 3, "one try and two retries")
		pids := map[int]bool{}
		for i, death := range re.Deaths {
			require.Equal(t, 5, death.ExitCode, "try %d", i+1)
			require.Equal(t, tries.Name(), death.Task)
			pids[death.Pid] = true
		}
		require.Len(t, pids, 3, "each try in a child of its own")
		var death *result.ChildDeath
		require.ErrorAs(t, err, &death)
		require.Same(t, re.Deaths[0], death, "errors.As finds the first death")
		require.Contains(t, err.Error(), "failed 3 tries; try 1: child ")
		require.Contains(t, err.Error(), "try 3: child ")

		// The delay before the second retry is twice that before the
		// first. Starting a child adds to the gaps between the tries, by
		// more than the delays on a loaded machine: the gaps show only
		// that each delay passed, and the events give the delays.
		var at []int64
		for _, f := range strings.Fields(readFile(t, file)) {
			ns, err := strconv.ParseInt(f, 10, 64)
			require.NoError(t, err)
			at = append(at, ns)
		}
		require.Len(t, at, 3, "the task ran three times")
		gap1, gap2 := time.Duration(at[1]-at[0]), time.Duration(at[2]-at[1])
		t.Logf("gaps between the tries: %v, %v", gap1, gap2)
		require.GreaterOrEqual(t, gap1, delay)
		require.GreaterOrEqual(t, gap2, 2*delay)
		var delays []time.Duration
		for _, e := range collect(t, d, events, nil) {
			if e.Kind == dispatcher.TaskRetried {
				delays = append(delays, e.Delay)
			}
		}
		require.Equal(t, []time.Duration{delay, 2 * delay}, delays, "the delays of the TaskRetried events: the delay grows")
	})
	t.Run("a retry that succeeds", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(2))
		file := filepath.Join(t.TempDir(), "tries")
		v, err := await(t, tries.Schedule(d, triesArg{File: file, Die: 1}, task.WithRetries(2, 10*time.Millisecond)))
		require.NoError(t, err)
		require.Equal(t, 2, v, "the second run answered")
		require.Len(t, strings.Fields(readFile(t, file)), 2)
		shutdown(t, d, nil)
	})
	t.Run("a task that fails is not retried", func(t *testing.T) {
		checkLeaks(t)
		d := start(t, strategy.Throttled(2))
		file := filepath.Join(t.TempDir(), "tries")
		_, err := await(t, tries.Schedule(d, triesArg{File: file, Fail: true}, task.WithRetries(3, time.Millisecond)))
		var te *result.TaskError
		require.ErrorAs(t, err, &te)
		require.Equal(t, "failing on run 1", te.Message)
		_, err = await(t, panics.Schedule(d, "once", task.WithRetries(3, time.Millisecond)))
		require.ErrorAs(t, err, &te)
		require.True(t, te.Panicked)
		shutdown(t, d, nil)
		require.Len(t, strings.Fields(readFile(t, file)), 1, "the task ran once")
	})
	t.Run("a task that is stopped is not retried", func(t *testing.T) {
		checkLeaks(t)
		g := newGate(t)
		d := start(t, strategy.Throttled(2), dispatcher.WithGracePeriod(50*time.Millisecond))
		arg := g.arg()
		arg.IgnoreTerm = true // so that it is killed: a death, were it not stopped
		r, _, _ := startedInTime(t, g, func(timeout time.Duration) *result.Result[int] {
			return hold.Schedule(d, arg, task.WithTimeout(timeout), task.WithRetries(3, time.Millisecond))
		}, 300*time.Millisecond, 2*time.Second, 8*time.Second)
		_, err := await(t, r)
		ce := requireCancel(t, err, hold.Name(), context.DeadlineExceeded, true)
		require.Equal(t, []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}, ce.Sent)
		shutdown(t, d, nil)
		require.NoError(t, g.started.SetReadDeadline(time.Now()))
		n, _ := g.started.Read(make([]byte, 8))
		require.Zero(t, n, "the task started again")
	})
	t.Run("Close ends the wait for a retry", func(t *testing.T) {
		checkLeaks(t)
		p := newProbe(strategy.Throttled(2))
		d := start(t, p)
		r := badExit.Schedule(d, exitArg{Code: 8}, task.WithRetries(1, time.Hour))
		p.waitFor(t, "the first try's child", func(s poolState) bool { return s.Children == 1 })
		mark := p.mark()
		p.waitForSince(t, mark, "the first try's child gone", func(s poolState) bool { return s.Children == 0 && s.Queued == 0 })
		require.False(t, r.Ready(), "it waits an hour for its retry")
		began := time.Now()
		require.NoError(t, d.Close())
		_, err := await(t, r)
		require.Less(t, time.Since(began), 10*time.Second)
		var re *result.RetryError
		require.ErrorAs(t, err, &re)
		require.Len(t, re.Deaths, 1, "the try that was made")
		require.Equal(t, 8, re.Deaths[0].ExitCode)
		require.EqualValues(t, 1, p.spawns.Load())
	})
}

// One crash harms only its own task: the other children, their futures
// and the dispatcher go on.
func TestOneCrashHarmsOnlyItsTask(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	d := start(t, strategy.Throttled(4),
		dispatcher.WithStderr(nil),
		procmanOptions(procman.WithHangupWait(100*time.Millisecond)))
	// Three children are held running for the whole test; the work below
	// goes through the fourth slot, next to them.
	held := []*result.Result[int]{hold.Schedule(d, g.arg()), hold.Schedule(d, g.arg()), hold.Schedule(d, g.arg())}
	g.waitStarted(t, 3)

	crashes := map[int]chaosArg{
		2:  {Act: actExit, Code: 9},
		5:  {Act: actSIGKILL},
		9:  {Act: actSIGSEGV},
		13: {Act: actGarbage, Garbage: []byte("\x01\x00\x00\x00\x00garbage")},
		17: {Act: actHangUp},
	}
	rs := make([]*result.Result[int], 20)
	for i := range rs {
		a, crash := crashes[i]
		if !crash {
			a = chaosArg{Act: actAnswer, Code: 1000 + i}
		}
		rs[i] = chaos.Schedule(d, a)
	}
	for i, r := range rs {
		v, err := await(t, r)
		if _, crash := crashes[i]; crash {
			var death *result.ChildDeath
			require.ErrorAs(t, err, &death, "task %d", i)
			continue
		}
		require.NoError(t, err, "task %d", i)
		require.Equal(t, 1000+i, v, "task %d", i)
	}
	for i, r := range held {
		require.False(t, r.Ready(), "held task %d was touched by the crashes", i)
	}
	g.open(t, 3)
	for i, r := range held {
		_, err := await(t, r)
		require.NoError(t, err, "held task %d", i)
	}
	v, err := await(t, square.Schedule(d, 12))
	require.NoError(t, err)
	require.Equal(t, 144, v)
	shutdown(t, d, nil)
}

// A reused child that begins a frame, leaves it unfinished and waits for
// its next task (the frame's header says more bytes than ever come) is
// killed once the frame wait has passed: its task resolves with a
// ChildDeath instead of waiting for ever, and the next task gets another
// child.
func TestAReusedChildThatLeavesAFrameUnfinishedDies(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)),
		dispatcher.WithStderr(nil),
		procmanOptions(procman.WithFrameWait(200*time.Millisecond)))
	pid, err := await(t, getPid.Schedule(d, 0))
	require.NoError(t, err)
	garbage := append(frametest.Header(nil, frametest.Note, 1000), "not a thousand bytes"...)
	_, err = await(t, chaos.Schedule(d, chaosArg{Act: actGarbage, Garbage: garbage}))
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death, "err = %v", err)
	require.Equal(t, pid, death.Pid, "the reused child ran it")
	var pe *procman.ProtocolError
	require.ErrorAs(t, err, &pe)
	require.ErrorContains(t, err, "a frame stopped")
	again, err := await(t, getPid.Schedule(d, 0))
	require.NoError(t, err)
	require.NotEqual(t, pid, again, "a new child")
	shutdown(t, d, nil)
}

// parentDirEnv makes this test binary the parent of TestParentDeathTakesItsChildrenWithIt (see
// the init function below) instead of a test run; parentModeEnv says what
// the parent runs: four blocking tasks ("children"), the same with one
// that starts a process of its own ("grandchild"), or one task that
// leaves a process behind in a reused child, which then waits idle
// ("idle").
const (
	parentDirEnv  = "PROCRASTINATE_TEST_PARENT_DIR"
	parentModeEnv = "PROCRASTINATE_TEST_PARENT_MODE"
)

// init runs the parent role of TestParentDeathTakesItsChildrenWithIt when the test re-executes
// this binary with parentDirEnv set. It runs after the package's variables
// are initialised, so the tasks are defined, and before TestMain, which
// never runs in that role. The variables are taken out of the environment
// first: the parent's own children (fresh starts of this binary, which
// run this init function too) must go on to procrastinate.Main in
// TestMain and serve their tasks.
func init() {
	dir, ok := os.LookupEnv(parentDirEnv)
	if !ok {
		return
	}
	mode := os.Getenv(parentModeEnv)
	os.Unsetenv(parentDirEnv)
	os.Unsetenv(parentModeEnv)
	s := strategy.Throttled(4)
	if mode == "idle" {
		s = strategy.Throttled(1, strategy.Reuse(strategy.Unlimited))
	}
	d, err := dispatcher.Start(s, dispatcher.WithGracePeriod(time.Hour))
	if err != nil {
		fmt.Fprintln(os.Stderr, "parent:", err)
		os.Exit(3)
	}
	switch mode {
	case "idle":
		if _, err := leaveBehind.Schedule(d, dir).Value(); err != nil {
			fmt.Fprintln(os.Stderr, "parent:", err)
			os.Exit(3)
		}
	case "close-fds":
		closeAll.Schedule(d, escapeArg{Dir: dir})
	case "daemon":
		startDaemon.Schedule(d, daemonArg{Dir: dir, Block: true})
	case "stopped":
		startSleepers.Schedule(d, escapeArg{Dir: dir, Sleepers: 3, HupIgnoringSleepers: 2})
	default:
		for i := range 4 {
			reportAndBlock.Schedule(d, blockArg{Dir: dir, IgnoreTerm: i%2 == 1, Grandchild: mode == "grandchild" && i == 3})
		}
	}
	for {
		time.Sleep(time.Hour) // until the test kills it
	}
}

// A parent killed by SIGKILL takes its children with it, also those that
// ignore SIGTERM: no child is left alive 2 seconds later.
func TestParentDeathTakesItsChildrenWithIt(t *testing.T) {
	t.Run("children", func(t *testing.T) {
		testParentDeath(t, "children", 4, 4)
	})
	// What a task started lives in its child's process group. Close kills
	// the group (TestCloseKillsWhatTheTaskStarted), and so does a parent's
	// death: the child's invocation pipe ends while a task is in flight,
	// and the child kills its group.
	t.Run("what a task started", func(t *testing.T) {
		testParentDeath(t, "grandchild", 4, 5)
	})
	// A reused child waiting for work whose last task left a process
	// behind: its pipe ends without the parent's goodbye (the stop frame
	// that comes before a pipe closed on purpose), so the child takes it
	// for its parent's death and kills its group too.
	t.Run("what an idle child's last task started", func(t *testing.T) {
		testParentDeath(t, "idle", 1, 2)
	})
}

// testParentDeath runs a parent in the given mode (see parentModeEnv),
// waits for files files of pids, pids in all, kills the parent with
// SIGKILL and checks that every one of them dies.
func testParentDeath(t *testing.T, mode string, files, want int) {
	t.Helper()
	testParentDeathBy(t, mode, files, want, syscall.SIGKILL, nil)
}

// testParentDeathBy is testParentDeath with the signal that kills the
// parent, and a function that is given the pids of each file (the
// child's first) before the parent is killed.
func testParentDeathBy(t *testing.T, mode string, files, want int, sig syscall.Signal, before func(t *testing.T, pids [][]int)) {
	checkLeaks(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	var stderr syncBuffer
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), parentDirEnv+"="+dir, parentModeEnv+"="+mode)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	parentDone := false
	t.Cleanup(func() {
		if !parentDone {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	require.Eventually(t, func() bool {
		matches, _ := filepath.Glob(filepath.Join(dir, "pid.*"))
		return len(matches) == files
	}, 20*time.Second, 5*time.Millisecond, "the parent's %d tasks did not report; its stderr: %s", files, &stderr)
	matches, err := filepath.Glob(filepath.Join(dir, "pid.*"))
	require.NoError(t, err)
	var pids []int
	var byFile [][]int
	for _, m := range matches {
		var filePids []int
		for _, f := range strings.Fields(readFile(t, m)) {
			pid, err := strconv.Atoi(f)
			require.NoError(t, err)
			filePids = append(filePids, pid)
		}
		pids = append(pids, filePids...)
		byFile = append(byFile, filePids)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL) // whatever survived, should the test fail
		}
	})
	require.Len(t, pids, want)
	for _, pid := range pids {
		require.True(t, testio.Alive(pid), "process %d is not running", pid)
	}

	if before != nil {
		before(t, byFile)
	}
	require.NoError(t, cmd.Process.Signal(sig))
	err = cmd.Wait()
	parentDone = true
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	killed := time.Now()
	var left []int
	for _, pid := range pids {
		exited, err := testio.WaitExited(pid, 0, time.Until(killed.Add(5*time.Second)))
		require.NoError(t, err)
		if !exited {
			left = append(left, pid)
		}
	}
	took := time.Since(killed)
	require.Empty(t, left, "processes alive %v after their parent was killed", took)
	t.Logf("all %d processes gone %v after the parent was killed", len(pids), took)
	require.Less(t, took, 2*time.Second)
}

// A child catches the termination signal only for a call that the
// dispatcher may end with it (one with a context or a timeout): a signal
// handler costs a fresh child two threads. termSelf sends its own child
// SIGTERM to tell which: a plain call's child dies of it, a cancellable
// call's task sees its context end.
func TestTermSignalCaughtOnlyWhenItMayCome(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(2))

	_, err := await(t, termSelf.Schedule(d, 0))
	var death *result.ChildDeath
	require.ErrorAs(t, err, &death, "a plain call's child does not catch SIGTERM")
	require.Equal(t, syscall.SIGTERM, death.Signal)

	for name, opt := range map[string]task.CallOption{
		"WithContext": task.WithContext(context.Background()),
		"WithTimeout": task.WithTimeout(time.Hour),
	} {
		_, err := await(t, termSelf.Schedule(d, 0, opt))
		var te *result.TaskError
		require.ErrorAs(t, err, &te, "%s: the child catches SIGTERM and ends the task's context", name)
		require.Equal(t, context.Canceled.Error(), te.Message, name)
	}
	shutdown(t, d, nil)
}

// Close reaches what a plain call's task started, at once, as it did when
// every child caught SIGTERM: the child, asked to stop while the task
// runs, catches the termination signal and sends it to its process group
// itself. The task here ignores its context and waits on a process it
// started, which dies of SIGTERM; it answers long before the grace
// period.
func TestCloseSignalsWhatAPlainTaskStarted(t *testing.T) {
	checkLeaks(t)
	g := newGate(t)
	const grace = 20 * time.Second
	d := start(t, strategy.Throttled(1), dispatcher.WithGracePeriod(grace))
	r := waitSleeper.Schedule(d, g.dir)
	g.waitStarted(t, 1)
	began := time.Now()
	require.NoError(t, d.Close())
	took := time.Since(began)
	require.True(t, r.Ready(), "Close returned before the future resolved")
	v, err := r.Value()
	require.NoError(t, err, "the task answered before the grace period")
	require.Equal(t, "signal: terminated", v, "how the task's own process ended")
	require.Less(t, took, grace/2, "Close waited for the grace period: the task's process got no SIGTERM")
}

// When the executable cannot start at all, each call fails with the
// reason, one after another, and none of them waits for an event that
// never comes (before, only the first failed while nothing ran, and the
// others waited for the next Schedule).
func TestCallsFailInTurnWhenNoChildCanStart(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1), procmanOptions(procman.WithExecutable(filepath.Join(t.TempDir(), "missing"))))
	rs := []*result.Result[int]{square.Schedule(d, 1), square.Schedule(d, 2), square.Schedule(d, 3)}
	for i, r := range rs {
		_, err := await(t, r)
		var se *procman.StartError
		require.ErrorAs(t, err, &se, "call %d", i)
		require.ErrorIs(t, err, syscall.ENOENT, "call %d", i)
	}
	require.NoError(t, d.Close())
}

// A cancellable call's child is one that catches the termination signal,
// which Close sends it. When that child cannot start, nothing of it is
// left for Close to signal.
func TestCloseAfterACancellableCallFailedToStart(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1))
	_, err := square.Schedule(d, 3, task.WithProcess(task.Process{Dir: "/nonexistent/dir"}), task.WithTimeout(time.Minute)).Value()
	var se *procman.StartError
	require.ErrorAs(t, err, &se)
	require.NoError(t, d.Close())
}

// An answer over the frame limit says which option raises the limit: the
// dispatcher's, and the process manager's.
func TestFrameOverTheLimitNamesTheOption(t *testing.T) {
	checkLeaks(t)
	d := start(t, strategy.Throttled(1), dispatcher.WithStderr(nil), dispatcher.WithMaxPayload(64<<10))
	_, err := await(t, rawStream.Schedule(d, frametest.Header(nil, frametest.Reply, 1<<20)))
	var pe *procman.ProtocolError
	require.ErrorAs(t, err, &pe, "Value() = %v; want a frame over the limit", err)
	for _, want := range []string{"procman.WithMaxPayload", "dispatcher.WithMaxPayload"} {
		require.Contains(t, err.Error(), want, "the error does not name the option that raises the limit")
	}
	shutdown(t, d, nil)
}
