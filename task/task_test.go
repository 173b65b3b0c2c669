package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

// TestMain serves as the child when a dispatcher re-executes the test
// binary: procrastinate.Main runs the task the child was started for and
// exits. In the test process it returns at once.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// The tests' tasks, defined at package level so that the test process
// and every child register the same names.

func echo[T any](ctx context.Context, v T) (T, error) { return v, nil }

type point struct {
	X, Y  int
	Label string
	Tags  []string
}

// echoes are tasks that answer with their argument, one for each type
// the round-trip tests send, all with one codec.
type echoes struct {
	codec  string
	Int    *task.Def[int, int]
	String *task.Def[string, string]
	Bool   *task.Def[bool, bool]
	Point  *task.Def[point, point]
	Slice  *task.Def[[]int, []int]
	Map    *task.Def[map[string]int, map[string]int]
	IntPtr *task.Def[*int, *int]
}

// defineEchoes defines the echoes with the codec opts give, under names
// that start with prefix.
func defineEchoes(codec, prefix string, opts ...task.Option) echoes {
	return echoes{
		codec:  codec,
		Int:    task.Define(prefix+"int", echo[int], opts...),
		String: task.Define(prefix+"string", echo[string], opts...),
		Bool:   task.Define(prefix+"bool", echo[bool], opts...),
		Point:  task.Define(prefix+"point", echo[point], opts...),
		Slice:  task.Define(prefix+"slice", echo[[]int], opts...),
		Map:    task.Define(prefix+"map", echo[map[string]int], opts...),
		IntPtr: task.Define(prefix+"intptr", echo[*int], opts...),
	}
}

var (
	jsonEchoes = defineEchoes("json", "task_test.echo.")
	gobEchoes  = defineEchoes("gob", "task_test.gob.echo.", task.WithCodec(gobcodec.Codec))

	echoInt    = jsonEchoes.Int
	echoString = jsonEchoes.String
)

type greeting struct {
	Name  string `json:"name"`
	Times int    `json:"times,omitempty"`
}

type reply struct {
	Text string `json:"text"`
	Pid  int    `json:"pid"`
}

var greet = task.Define("task_test.greet", func(ctx context.Context, g greeting) (reply, error) {
	return reply{Text: strings.TrimSpace(strings.Repeat("hello "+g.Name+" ", g.Times)), Pid: os.Getpid()}, nil
}, task.WithCodec(task.JSON))

var failing = task.Define("task_test.failing", func(ctx context.Context, n int) (int, error) {
	return 0, fmt.Errorf("bad input %d", n)
})

var panicking = task.Define("task_test.panicking", func(ctx context.Context, n int) (int, error) {
	return panicDeep(n), nil
})

// panicDeep is named so that the panic's stack can be seen to mention it.
//
//go:noinline
func panicDeep(n int) int {
	panic(fmt.Sprintf("boom %d", n))
}

var goexiting = task.Define("task_test.goexiting", func(ctx context.Context, n int) (int, error) {
	goexitDeep()
	return n, nil
})

// goexitDeep is named so that the stack can be seen to mention it.
//
//go:noinline
func goexitDeep() { runtime.Goexit() }

type holder struct{ V any }

var (
	echoHolder    = task.Define("task_test.echo.holder", echo[holder])
	echoHolderGob = task.Define("task_test.gob.echo.holder", echo[holder], task.WithCodec(gobcodec.Codec))
)

func unencodable(ctx context.Context, n int) (holder, error) {
	return holder{V: make(chan int)}, nil
}

var (
	unencodableResult    = task.Define("task_test.unencodable.result", unencodable)
	unencodableResultGob = task.Define("task_test.gob.unencodable.result", unencodable, task.WithCodec(gobcodec.Codec))
)

var nilPointerResultGob = task.Define("task_test.gob.nilpointer.result", func(ctx context.Context, n int) (*point, error) {
	return nil, nil
}, task.WithCodec(gobcodec.Codec))

// picky encodes fine in the child and refuses to decode in the parent; it
// records where it was decoded.
type picky struct{ N int }

var errPicky = errors.New("picky refuses to decode")

var (
	pickyMu      sync.Mutex
	pickyDecodes int
	pickyStack   string
)

func (p picky) GobEncode() ([]byte, error) { return []byte{byte(p.N)}, nil }

func (p *picky) GobDecode([]byte) error {
	pickyMu.Lock()
	defer pickyMu.Unlock()
	pickyDecodes++
	pickyStack = string(debug.Stack())
	return errPicky
}

var pickyTask = task.Define("task_test.picky", func(ctx context.Context, n int) (picky, error) {
	return picky{N: n}, nil
}, task.WithCodec(gobcodec.Codec))

// waitForStop tells the test it runs by writing to the fifo at path, then
// waits for its context to end and returns the context's error.
var waitForStop = task.Define("task_test.waitforstop", func(ctx context.Context, path string) (string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	_, err = f.Write([]byte{1})
	f.Close()
	if err != nil {
		return "", err
	}
	<-ctx.Done()
	return "", ctx.Err()
})

// startDispatcher starts a dispatcher that the test shuts down when it ends.
func startDispatcher(t *testing.T, s strategy.Strategy, opts ...dispatcher.Option) *dispatcher.Dispatcher {
	t.Helper()
	d, err := dispatcher.Start(s, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, d.Shutdown(context.Background()), "Shutdown")
	})
	return d
}

// renaming is a Scheduler that hands its calls to a real one under another
// task name: the way to make a child run a task it does not know.
type renaming struct {
	to   string
	next task.Scheduler
}

func (r renaming) Submit(c *task.Call) {
	c.Task = r.to
	r.next.Submit(c)
}

// capturing is a Scheduler that records the calls it gets and hands them
// on to next, if next is set.
type capturing struct {
	mu    sync.Mutex
	calls []task.Call
	next  task.Scheduler
}

func (c *capturing) Submit(call *task.Call) {
	c.mu.Lock()
	c.calls = append(c.calls, *call)
	c.mu.Unlock()
	if c.next != nil {
		c.next.Submit(call)
	}
}

func (c *capturing) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// defined reports whether a task is defined under name: a call of
// task.Raw(name) reaches its scheduler only then.
func defined(name string) bool {
	s := &capturing{}
	task.Raw(name).Schedule(s, nil)
	return s.count() == 1
}

func TestDefineRegistersTheTask(t *testing.T) {
	assert.Equal(t, "task_test.echo.int", echoInt.Name())
	assert.True(t, defined("task_test.echo.int"), "task_test.echo.int is not defined")
	assert.True(t, defined("task_test.greet"), "task_test.greet is not defined")
	assert.False(t, defined("task_test.never-defined"), "a name never defined is defined")
}

// panicText runs f and returns what it panicked with, as text; it fails the
// test if f does not panic.
func panicText(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		v := recover()
		require.NotNil(t, v, "no panic; want one")
		msg = fmt.Sprint(v)
	}()
	f()
	return ""
}

// duplicates counts the runs of the duplicate-name test.
var duplicates atomic.Int64

func TestDefinePanicsOnABadNameFunctionOrCodec(t *testing.T) {
	t.Run("empty name", func(t *testing.T) {
		msg := panicText(t, func() { task.Define("", echo[int]) })
		assert.Contains(t, msg, "task: ")
		assert.Contains(t, msg, "empty name")
	})
	t.Run("nil function", func(t *testing.T) {
		msg := panicText(t, func() { task.Define[int, int]("task_test.nilfunc", nil) })
		assert.Contains(t, msg, `"task_test.nilfunc"`)
		assert.Contains(t, msg, "nil function")
		assert.False(t, defined("task_test.nilfunc"), "a refused definition must not be registered")
	})
	t.Run("nil codec", func(t *testing.T) {
		msg := panicText(t, func() { task.Define("task_test.nilcodec", echo[int], task.WithCodec(nil)) })
		assert.Contains(t, msg, `"task_test.nilcodec"`)
		assert.Contains(t, msg, "nil codec")
		assert.False(t, defined("task_test.nilcodec"), "a refused definition must not be registered")
	})
	t.Run("duplicate name", func(t *testing.T) {
		// Only this process runs this; children never define the name,
		// which is new on every run (go test -count=n).
		name := fmt.Sprintf("task_test.duplicate.%d", duplicates.Add(1))
		_, file, line, ok := runtime.Caller(0)
		first := task.Define(name, echo[int])                           // line+1
		msg := panicText(t, func() { task.Define(name, echo[string]) }) // line+2
		require.True(t, ok)
		firstAt := fmt.Sprintf("%s:%d", file, line+1)
		secondAt := fmt.Sprintf("%s:%d", file, line+2)
		assert.Contains(t, msg, `"`+name+`"`)
		assert.Contains(t, msg, firstAt, "the panic must name the first definition's place")
		assert.Contains(t, msg, secondAt, "the panic must name the second definition's place")
		assert.Equal(t, name, first.Name(), "the first definition stands")
	})
}

// roundTrip schedules def with v on d and returns what came back.
func roundTrip[T any](t *testing.T, d task.Scheduler, def *task.Def[T, T], v T) T {
	t.Helper()
	got, err := def.Schedule(d, v).Value()
	require.NoError(t, err, "%s.Schedule(%#v).Value()", def.Name(), v)
	return got
}

func TestValuesRoundTripThroughAChild(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Throttled(4))
	for _, e := range []echoes{jsonEchoes, gobEchoes} {
		t.Run(e.codec, func(t *testing.T) { roundTrips(t, d, e) })
	}
}

func roundTrips(t *testing.T, d task.Scheduler, e echoes) {
	seven := 7
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"int", func(t *testing.T) { assert.Equal(t, 42, roundTrip(t, d, e.Int, 42)) }},
		{"negative int", func(t *testing.T) { assert.Equal(t, -1<<40, roundTrip(t, d, e.Int, -1<<40)) }},
		{"zero int", func(t *testing.T) { assert.Equal(t, 0, roundTrip(t, d, e.Int, 0)) }},
		{"string", func(t *testing.T) { assert.Equal(t, "héllo\x00world", roundTrip(t, d, e.String, "héllo\x00world")) }},
		{"empty string", func(t *testing.T) { assert.Equal(t, "", roundTrip(t, d, e.String, "")) }},
		{"false", func(t *testing.T) { assert.Equal(t, false, roundTrip(t, d, e.Bool, false)) }},
		{"struct", func(t *testing.T) {
			p := point{X: 3, Y: -4, Label: "p", Tags: []string{"a", "b"}}
			assert.Equal(t, p, roundTrip(t, d, e.Point, p))
		}},
		{"zero struct", func(t *testing.T) { assert.Equal(t, point{}, roundTrip(t, d, e.Point, point{})) }},
		{"slice", func(t *testing.T) { assert.Equal(t, []int{1, 0, 3}, roundTrip(t, d, e.Slice, []int{1, 0, 3})) }},
		{"nil slice", func(t *testing.T) { assert.Nil(t, roundTrip(t, d, e.Slice, nil)) }},
		{"map", func(t *testing.T) {
			m := map[string]int{"a": 1, "zero": 0}
			assert.Equal(t, m, roundTrip(t, d, e.Map, m))
		}},
		{"pointer", func(t *testing.T) {
			got := roundTrip(t, d, e.IntPtr, &seven)
			require.NotNil(t, got)
			assert.Equal(t, 7, *got)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

func TestWithCodecJSONSendsTheArgumentAsJSON(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	c := &capturing{next: d}
	v, err := greet.Schedule(c, greeting{Name: "ann", Times: 2}).Value()
	require.NoError(t, err)
	assert.Equal(t, "hello ann hello ann", v.Text, "the child decoded the JSON argument with its tags")
	assert.NotEqual(t, os.Getpid(), v.Pid, "the task ran in this process")
	assert.NotZero(t, v.Pid)

	require.Equal(t, 1, c.count())
	arg := c.calls[0].Arg
	assert.True(t, json.Valid(arg), "the argument %q is not JSON", arg)
	assert.JSONEq(t, `{"name":"ann","times":2}`, string(arg))
}

func TestAnUnencodableArgumentFailsBeforeTheScheduler(t *testing.T) {
	cases := []struct {
		name     string
		schedule func(s task.Scheduler) (any, error)
		encode   func() error // the codec's own error for the same value
		task     string
		codec    string
	}{
		{
			// A chan or a func never gets here: Define refuses the type
			// (TestDefineRefusesTypesTheCodecCannotCarry). An interface
			// field holds what the codec learns of only at run time.
			name: "chan in an interface, json",
			schedule: func(s task.Scheduler) (any, error) {
				return echoHolder.Schedule(s, holder{V: make(chan int)}).Value()
			},
			encode: func() error { _, err := task.JSON.Marshal(holder{V: make(chan int)}); return err },
			task:   echoHolder.Name(), codec: "json",
		},
		{
			name: "chan in an interface, gob",
			schedule: func(s task.Scheduler) (any, error) {
				return echoHolderGob.Schedule(s, holder{V: make(chan int)}).Value()
			},
			encode: func() error { _, err := gobcodec.Codec.Marshal(holder{V: make(chan int)}); return err },
			task:   echoHolderGob.Name(), codec: "gob",
		},
		{
			// gob panics on a nil pointer at top level instead of returning
			// an error; Schedule must not crash the caller.
			name: "nil pointer, gob",
			schedule: func(s task.Scheduler) (any, error) {
				return gobEchoes.IntPtr.Schedule(s, nil).Value()
			},
			encode: func() error { _, err := gobcodec.Codec.Marshal((*int)(nil)); return err },
			task:   gobEchoes.IntPtr.Name(), codec: "gob",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &capturing{} // no dispatcher: Schedule must not reach one
			want := c.encode()
			require.Error(t, want, "the codec encodes the value; the case tests nothing")
			_, err := c.schedule(s)
			require.Error(t, err)
			assert.Zero(t, s.count(), "the Scheduler got a call whose argument does not encode")
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", c.task), "the error names the task")
			assert.Contains(t, err.Error(), "("+c.codec+")", "the error names the codec")
			assert.Contains(t, err.Error(), want.Error(), "the error carries the encoder's")
			require.NotNil(t, errors.Unwrap(err), "the encoder's error is wrapped")
			assert.Equal(t, want.Error(), errors.Unwrap(err).Error())
			var te *result.TaskError
			assert.NotErrorAs(t, err, &te, "an encoding error is not a TaskError: %v", err)
			var cd *result.ChildDeath
			assert.NotErrorAs(t, err, &cd, "an encoding error is not a ChildDeath: %v", err)
		})
	}
}

func TestScheduleReturnsAtOnce(t *testing.T) {
	// A Scheduler that never runs anything: Schedule must not wait for it.
	s := &capturing{}
	r := echoInt.Schedule(s, 3)
	assert.False(t, r.Ready(), "the future resolved with no child")
	require.Equal(t, 1, s.count())
	assert.Equal(t, echoInt.Name(), s.calls[0].Task)
	s.calls[0].Fail(errors.New("not run"))
	_, err := r.Value()
	assert.EqualError(t, err, "not run")
}

func TestScheduleOnANilSchedulerFailsWithErrNilScheduler(t *testing.T) {
	t.Run("nil interface", func(t *testing.T) {
		_, err := echoInt.Schedule(nil, 1).Value()
		assert.ErrorIs(t, err, task.ErrNilScheduler)
	})
	t.Run("nil *Dispatcher", func(t *testing.T) {
		// What a failed dispatcher.Start leaves in d.
		var d *dispatcher.Dispatcher
		_, err := echoInt.Schedule(d, 1).Value()
		assert.ErrorIs(t, err, task.ErrNilScheduler)
	})
}

// taskError returns err as a *result.TaskError, failing the test if it is
// not one.
func taskError(t *testing.T, err error) *result.TaskError {
	t.Helper()
	var te *result.TaskError
	require.ErrorAs(t, err, &te, "error %v (%T); want a *result.TaskError", err, err)
	return te
}

func TestAnUnknownTaskIsATaskErrorFromTheChild(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	r := echoInt.Schedule(renaming{to: "no-such-task", next: d}, 1)
	_, err := r.Value()
	te := taskError(t, err)
	assert.Equal(t, "no-such-task", te.Task)
	assert.Contains(t, te.Message, `no task named "no-such-task" is defined`)
	assert.False(t, te.Panicked)
	assert.NotZero(t, te.Pid)
	assert.NotEqual(t, os.Getpid(), te.Pid)

	// The dispatcher goes on working.
	v, err := echoInt.Schedule(d, 5).Value()
	require.NoError(t, err)
	assert.Equal(t, 5, v)
}

func TestAnArgumentTheChildCannotDecodeIsATaskError(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	// A string argument, sent to a task that takes an int.
	_, err := echoString.Schedule(renaming{to: echoInt.Name(), next: d}, "seven").Value()
	te := taskError(t, err)
	assert.Equal(t, echoInt.Name(), te.Task)
	assert.Contains(t, te.Message, `task "task_test.echo.int": decoding the argument (json)`)
	assert.False(t, te.Panicked)
}

func TestAReturnedErrorIsATaskError(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	v, err := failing.Schedule(d, 7).Value()
	assert.Zero(t, v)
	te := taskError(t, err)
	assert.Equal(t, failing.Name(), te.Task)
	assert.Equal(t, "bad input 7", te.Message)
	assert.False(t, te.Panicked)
	assert.Empty(t, te.Stack)
	assert.EqualError(t, err, `result: task "task_test.failing" failed: bad input 7`)
}

func TestAPanicIsATaskErrorWithItsStack(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	_, err := panicking.Schedule(d, 3).Value()
	te := taskError(t, err)
	assert.Equal(t, panicking.Name(), te.Task)
	assert.Equal(t, "boom 3", te.Message)
	assert.True(t, te.Panicked)
	assert.Contains(t, te.Stack, "task_test.panicDeep", "the stack must show where the task panicked")
	assert.NotEqual(t, os.Getpid(), te.Pid)
}

func TestAGoexitIsATaskErrorWithItsStack(t *testing.T) {
	leakcheck.Check(t)
	// runtime.Goexit neither returns nor panics; it ends the child's main
	// goroutine. The future must resolve all the same.
	d := startDispatcher(t, strategy.Simple())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := goexiting.Schedule(d, 1).Wait(ctx)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the future did not resolve")
	te := taskError(t, err)
	assert.Contains(t, te.Message, "runtime.Goexit")
	assert.False(t, te.Panicked)
	assert.Contains(t, te.Stack, "task_test.goexitDeep", "the stack must show where Goexit was called")

	v, err := echoInt.Schedule(d, 2).Value()
	require.NoError(t, err, "the dispatcher goes on working")
	assert.Equal(t, 2, v)
}

func TestAnUnencodableResultIsATaskErrorNotAPanic(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Simple())
	for codec, def := range map[string]*task.Def[int, holder]{"json": unencodableResult, "gob": unencodableResultGob} {
		t.Run("chan in an interface, "+codec, func(t *testing.T) {
			_, err := def.Schedule(d, 1).Value()
			te := taskError(t, err)
			assert.False(t, te.Panicked)
			assert.Contains(t, te.Message, fmt.Sprintf("task %q: encoding the result (%s)", def.Name(), codec))
			assert.Contains(t, te.Message, "chan int")
		})
	}
	t.Run("nil pointer, gob", func(t *testing.T) {
		// gob panics on a nil pointer; the task did not panic, and must
		// not be reported as if it had.
		_, err := nilPointerResultGob.Schedule(d, 1).Value()
		te := taskError(t, err)
		assert.False(t, te.Panicked, "reported as a panic: %v", err)
		assert.Contains(t, te.Message, "encoding the result (gob)")
		assert.Contains(t, te.Message, "nil pointer")
	})
}

func TestTheResultIsDecodedOnceOnTheCallersGoroutine(t *testing.T) {
	leakcheck.Check(t)
	pickyMu.Lock()
	pickyDecodes, pickyStack = 0, "" // go test -count=n
	pickyMu.Unlock()
	d := startDispatcher(t, strategy.Simple())
	r := pickyTask.Schedule(d, 9)
	<-r.Done()
	pickyMu.Lock()
	before := pickyDecodes
	pickyMu.Unlock()
	assert.Zero(t, before, "the answer was decoded before anyone asked for it")

	_, err := r.Value()
	require.Error(t, err)
	assert.ErrorIs(t, err, errPicky)
	assert.Contains(t, err.Error(), `task "task_test.picky": decoding the result (gob)`)
	var te *result.TaskError
	assert.NotErrorAs(t, err, &te, "a decoding error in the parent is not the task's failure")

	_, err2 := r.Value()
	assert.Equal(t, err, err2, "a second Value returns the same")

	pickyMu.Lock()
	defer pickyMu.Unlock()
	assert.Equal(t, 1, pickyDecodes, "decoded once")
	assert.Contains(t, pickyStack, "TestTheResultIsDecodedOnceOnTheCallersGoroutine", "decoded on another goroutine than the caller's")
	assert.NotContains(t, pickyStack, "dispatcher.(*Dispatcher).run")
}

// Close ends a running task's context: with a stop frame for a plain
// call, whose child does not catch SIGTERM (the termination signal goes
// only to children that catch it), so that the task returns long before
// the grace period.
func TestCloseEndsARunningTasksContext(t *testing.T) {
	leakcheck.Check(t)
	const grace = 10 * time.Second
	d, err := dispatcher.Start(strategy.Simple(), dispatcher.WithGracePeriod(grace))
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.Close()
		}
	})

	// The task writes to the fifo once it runs.
	fifo := filepath.Join(t.TempDir(), "running")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	started, err := os.OpenFile(fifo, os.O_RDWR, 0) // O_RDWR: does not wait for a writer
	require.NoError(t, err)
	defer started.Close()

	r := waitForStop.Schedule(d, fifo)
	require.NoError(t, started.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = started.Read(make([]byte, 1))
	require.NoError(t, err, "the task did not start: %v", r.Err())

	begin := time.Now()
	require.NoError(t, d.Close())
	closed = true
	took := time.Since(begin)

	// The child answered before it exited: the task's own error, not a
	// ChildDeath, and no SIGKILL was needed.
	require.True(t, r.Ready(), "Close returned before the future resolved")
	_, err = r.Value()
	te := taskError(t, err)
	assert.Equal(t, context.Canceled.Error(), te.Message)
	assert.False(t, te.Panicked)
	assert.Less(t, took, grace/2, "Close waited for the grace period; the task's context did not end")
}
