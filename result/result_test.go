package result

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/future"
)

func atoi(b []byte) (int, error) { return strconv.Atoi(string(b)) }

// newResult makes a future as package task does: a core, and a Result
// bound to it through the hook of internal/future.
func newResult[T any](decode func([]byte) (T, error)) (*Result[T], *future.Future) {
	f := future.New()
	r := new(Result[T])
	future.Bind(r, f, decode)
	return r, f
}

// failed returns a future already resolved with err.
func failed[T any](err error) *Result[T] {
	r, f := newResult(func([]byte) (T, error) { panic("never called: the future fails") })
	f.Fail(err)
	return r
}

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestOnlyTheFirstResolveOrFailCounts(t *testing.T) {
	errBoom := errors.New("boom")
	r, res := newResult(atoi)
	var (
		wins  atomic.Int32
		start = make(chan struct{})
		wg    sync.WaitGroup
	)
	for i := range 100 {
		wg.Go(func() {
			<-start
			var won bool
			if i%2 == 0 {
				won = res.Resolve([]byte(strconv.Itoa(i)))
			} else {
				won = res.Fail(errBoom)
			}
			if won {
				wins.Add(1)
			}
			// A loser returns only once the future is resolved.
			if !res.Resolved() {
				wins.Add(1000)
			}
		})
	}
	close(start)
	wg.Wait()
	require.Equal(t, int32(1), wins.Load(), "Resolve/Fail returned true this many times (+1000 per Resolved() false after returning); want 1")

	v, err := r.Value()
	if err != nil {
		require.ErrorIs(t, err, errBoom)
		require.Zero(t, v)
	} else {
		require.Zero(t, v%2, "Value() = %d; want the even number of a Resolve", v)
	}
	require.False(t, res.Resolve([]byte("1")), "Resolve after resolution")
	require.False(t, res.Fail(errBoom), "Fail after resolution")
	v2, err2 := r.Value()
	require.Equal(t, v, v2)
	require.Equal(t, err, err2)
}

func TestConcurrentValueCallsDecodeOnce(t *testing.T) {
	var calls atomic.Int32
	r, res := newResult(func(b []byte) (int, error) {
		calls.Add(1)
		return atoi(b)
	})
	const n = 50
	got := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = r.Value() })
	}
	require.True(t, res.Resolve([]byte("49")))
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "reader %d", i)
		require.Equal(t, 49, got[i], "reader %d: Value() = %d; want 49", i, got[i])
	}
	require.Equal(t, int32(1), calls.Load(), "decode calls")
}

func TestDecodeRunsOnceOnTheCallersGoroutine(t *testing.T) {
	var calls int // no lock: the race detector checks that decode runs where we say
	r, res := newResult(func(b []byte) (int, error) {
		calls++
		return atoi(b)
	})

	resolved := make(chan struct{})
	go func() {
		defer close(resolved)
		res.Resolve([]byte("7"))
	}()
	<-resolved
	require.Zero(t, calls, "decode calls after Resolve")
	require.True(t, r.Ready())

	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 7, v)
	require.Equal(t, 1, calls, "decode calls after Value")

	v, err = r.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, 7, v)
	require.NoError(t, r.Err())
	require.Equal(t, 1, calls, "decode calls after Value, Wait and Err")
}

func TestADecodingErrorIsTheErrorOfValueAndErr(t *testing.T) {
	r, res := newResult(atoi)
	require.True(t, res.Resolve([]byte("seven")))

	_, err := r.Value()
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "result: decoding the answer: "), "Value() error = %q", err)
	var numErr *strconv.NumError
	require.ErrorAs(t, err, &numErr)
	require.Equal(t, err, r.Err(), "Err() and Value() disagree")
}

func TestDecodePanicRepeats(t *testing.T) {
	r, res := newResult(func([]byte) (int, error) { panic("bad decoder") })
	res.Resolve(nil)
	require.PanicsWithValue(t, "bad decoder", func() { _, _ = r.Value() })
	require.PanicsWithValue(t, "bad decoder", func() { _, _ = r.Value() })
}

func TestWaitReturnsTheValueOrTheContextsError(t *testing.T) {
	t.Run("cancelled before", func(t *testing.T) {
		r, res := newResult(atoi)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		v, err := r.Wait(ctx)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, context.Canceled, err, "Wait should return ctx.Err() itself")
		require.Zero(t, v)
		require.False(t, r.Ready(), "the future should still be pending")
		require.False(t, res.Resolved())

		require.True(t, res.Resolve([]byte("3")), "resolving after a Wait gave up")
		v, err = r.Value()
		require.NoError(t, err)
		require.Equal(t, 3, v)
	})
	t.Run("deadline", func(t *testing.T) {
		r, _ := newResult(atoi)
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_, err := r.Wait(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("resolved later", func(t *testing.T) {
		r, res := newResult(atoi)
		waiting := make(chan struct{})
		type answer struct {
			v   int
			err error
		}
		got := make(chan answer, 1)
		go func() {
			close(waiting)
			v, err := r.Wait(context.Background())
			got <- answer{v, err}
		}()
		<-waiting
		res.Resolve([]byte("49"))
		a := <-got
		require.NoError(t, a.err)
		require.Equal(t, 49, a.v)
	})
	t.Run("resolved and cancelled", func(t *testing.T) {
		r, res := newResult(atoi)
		res.Resolve([]byte("5"))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for range 100 {
			v, err := r.Wait(ctx)
			require.NoError(t, err, "a resolved future answers whatever ctx says")
			require.Equal(t, 5, v)
		}
	})
}

func TestReadyDoneAndErrNeverWait(t *testing.T) {
	r, res := newResult(atoi)
	require.False(t, r.Ready())
	require.False(t, res.Resolved())
	require.False(t, isClosed(r.Done()))
	require.False(t, isClosed(res.Done()))
	require.NoError(t, r.Err(), "Err() of a pending future")

	res.Fail(errors.New("boom"))
	require.True(t, r.Ready())
	require.True(t, res.Resolved())
	require.True(t, isClosed(r.Done()))
	require.True(t, isClosed(res.Done()))
	require.EqualError(t, r.Err(), "boom")
	require.Equal(t, r.Done(), r.Done(), "Done should return one channel")
}

func TestFailedIsAResolvedFutureWithItsError(t *testing.T) {
	cause := &TaskError{Task: "square", Message: "no"}
	r := failed[int](cause)
	require.True(t, r.Ready())
	v, err := r.Value()
	require.Zero(t, v)
	require.Same(t, cause, err, "Value() should return the error unwrapped")
	_, err = r.Wait(context.Background())
	require.Same(t, cause, err)
	require.Same(t, cause, r.Err())
}

func TestFailWithANilErrorPanicsAndResolvesNothing(t *testing.T) {
	_, res := newResult(atoi)
	require.PanicsWithValue(t, "future: Fail with nil error", func() { res.Fail(nil) })
	require.False(t, res.Resolved(), "Fail(nil) must not resolve the future")
}

func TestErrorsAsFindsChildDeathAndTaskErrorThroughWrapping(t *testing.T) {
	errProto := errors.New("frame too large")
	death := &ChildDeath{Task: "square", Pid: 42, ExitCode: -1, Signal: syscall.SIGKILL, Err: errProto}
	taskErr := &TaskError{Task: "square", Pid: 42, Message: "boom"}

	r := failed[int](fmt.Errorf("dispatcher: %w", death))
	_, err := r.Value()
	var gotDeath *ChildDeath
	require.ErrorAs(t, err, &gotDeath)
	require.Same(t, death, gotDeath)
	require.ErrorIs(t, err, errProto, "ChildDeath.Unwrap should expose its cause")
	var gotTask *TaskError
	require.NotErrorAs(t, err, &gotTask)

	r = failed[int](fmt.Errorf("dispatcher: %w", taskErr))
	_, err = r.Value()
	require.ErrorAs(t, err, &gotTask)
	require.Same(t, taskErr, gotTask)

	require.NoError(t, (&ChildDeath{}).Unwrap())
}

func TestChildDeathErrorSaysHowTheChildDied(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		e    *ChildDeath
		want string
	}{
		{
			name: "signalled",
			e:    &ChildDeath{Task: "square", Pid: 1234, ExitCode: -1, Signal: syscall.SIGKILL, Duration: 12*time.Millisecond + 345*time.Microsecond},
			want: `result: task "square": child 1234 died before answering: killed by signal 9 (killed) after 12ms`,
		},
		{
			name: "exited",
			e:    &ChildDeath{Task: "square", Pid: 1234, ExitCode: 3, Duration: 1200 * time.Millisecond},
			want: `result: task "square": child 1234 died before answering: exited with code 3 after 1.2s`,
		},
		{
			name: "with cause",
			e:    &ChildDeath{Task: "square", Pid: 7, ExitCode: 0, Duration: time.Second, Err: errors.New("protocol: frame too large")},
			want: `result: task "square": child 7 died before answering: exited with code 0 after 1s: protocol: frame too large`,
		},
		{
			name: "with stderr",
			e:    &ChildDeath{Task: "square", Pid: 7, ExitCode: 2, Duration: time.Second, Stderr: []byte("goroutine 1 [running]:\npanic: boom\n\n")},
			want: `result: task "square": child 7 died before answering: exited with code 2 after 1s; its stderr ended with: "goroutine 1 [running]:\npanic: boom"`,
		},
		{
			name: "long stderr keeps whole last lines",
			e:    &ChildDeath{Task: "t", Pid: 7, ExitCode: 2, Stderr: []byte(long + "\nlast line\n")},
			want: `result: task "t": child 7 died before answering: exited with code 2; its stderr ended with: "last line"`,
		},
		{
			name: "long stderr line",
			e:    &ChildDeath{Task: "t", Pid: 7, ExitCode: 2, Stderr: []byte(long)},
			want: `result: task "t": child 7 died before answering: exited with code 2; its stderr ended with: "` + strings.Repeat("x", 200) + `"`,
		},
		{
			name: "blank stderr",
			e:    &ChildDeath{Task: "t", Pid: 7, ExitCode: 1, Stderr: []byte("\n \n")},
			want: `result: task "t": child 7 died before answering: exited with code 1`,
		},
		{
			name: "the crash's cause",
			e: &ChildDeath{Task: "t", Pid: 7, ExitCode: 2, Cause: "panic: boom [recovered]\n\tpanic: again", Stack: "goroutine 9 [running]:\nmain.f()",
				Stderr: []byte("panic: boom [recovered]\n\tpanic: again\n\ngoroutine 9 [running]:\nmain.f()\ncreated by main.g in goroutine 1\n")},
			want: `result: task "t": child 7 died before answering: exited with code 2; cause: "panic: boom [recovered]\n\tpanic: again"; its stderr ended with: "panic: boom [recovered]\n\tpanic: again\n\ngoroutine 9 [running]:\nmain.f()\ncreated by main.g in goroutine 1"`,
		},
		{
			name: "a long cause is cut at a rune boundary",
			e:    &ChildDeath{Task: "t", Pid: 7, ExitCode: 2, Cause: "panic: " + strings.Repeat("é", 200)},
			want: `result: task "t": child 7 died before answering: exited with code 2; cause: "panic: ` + strings.Repeat("é", 96) + `..."`,
		},
		{
			name: "no task name",
			e:    &ChildDeath{Pid: 7, ExitCode: -1, Signal: syscall.SIGSEGV, Duration: 300 * time.Microsecond},
			want: `result: child 7 died before answering: killed by signal 11 (segmentation fault) after 300µs`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.e.Error())
		})
	}
}

func TestRetryErrorNamesEachCause(t *testing.T) {
	e := &RetryError{Task: "t", Deaths: []*ChildDeath{
		{Task: "t", Pid: 7, ExitCode: 2, Cause: "fatal error: concurrent map writes"},
		{Task: "t", Pid: 8, ExitCode: -1, Signal: syscall.SIGKILL},
	}}
	require.Equal(t, `result: task "t" failed 2 tries; try 1: child 7 exited with code 2 (cause: "fatal error: concurrent map writes"); try 2: child 8 killed by signal 9 (killed)`, e.Error())
}

func TestLastLinesCutsAtARuneBoundary(t *testing.T) {
	b := []byte(strings.Repeat("é", 150)) // 300 bytes, 2 a rune
	got := lastLines(append([]byte{'x'}, b...), 200)
	require.Equal(t, strings.Repeat("é", 100), string(got))
	got = lastLines(b[1:], 199) // the cut falls inside a rune
	require.Equal(t, strings.Repeat("é", 99), string(got))
}

func TestTaskErrorErrorSaysFailedOrPanicked(t *testing.T) {
	tests := []struct {
		name string
		e    *TaskError
		want string
	}{
		{"returned", &TaskError{Task: "square", Pid: 1, Message: "negative input"}, `result: task "square" failed: negative input`},
		{"panicked", &TaskError{Task: "square", Pid: 1, Message: "boom", Panicked: true, Stack: "goroutine 1 [running]:\n..."}, `result: task "square" panicked: boom`},
		{"no name", &TaskError{Message: "boom"}, `result: task failed: boom`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.e.Error())
		})
	}
}
