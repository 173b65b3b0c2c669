package task_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

type withChanSlice struct {
	N  int
	Cs []chan int
}

// noExported has a field, and none that gob can see.
//
//lint:ignore U1000 the unexported field is what the test case is about
type noExported struct{ n int }

type holdsNoExported struct{ Inner noExported }

type withComplex struct{ Z complex64 }

type chanField struct {
	N int
	C chan int // gob leaves chan fields out, as it leaves out unexported ones
}

type skippedChan struct {
	N int
	C chan int `json:"-"`
}

// TestDefineRefusesTypesTheCodecCannotCarry: a type that the task's codec
// can never encode is refused where the task is defined, with the reason
// and what to do instead, not found in a child at run time.
func TestDefineRefusesTypesTheCodecCannotCarry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		define func(name string)
		want   []string // in the panic's message, beside `task: Define("<name>")`
	}{
		{"gob: any argument", func(n string) { task.Define(n, echo[any], task.WithCodec(gobcodec.Codec)) }, []string{"argument type any", "concrete type", "task.JSON"}},
		{"gob: any result", func(n string) {
			task.Define(n, func(ctx context.Context, _ int) (any, error) { return 1, nil }, task.WithCodec(gobcodec.Codec))
		}, []string{"result type any", "concrete type"}},
		{"gob: chan argument", func(n string) { task.Define(n, echo[chan int], task.WithCodec(gobcodec.Codec)) }, []string{"chan int", "cannot cross", "instead"}},
		{"gob: func argument", func(n string) { task.Define(n, echo[func()], task.WithCodec(gobcodec.Codec)) }, []string{"func()", "cannot cross"}},
		{"gob: unsafe.Pointer", func(n string) { task.Define(n, echo[unsafe.Pointer], task.WithCodec(gobcodec.Codec)) }, []string{"unsafe.Pointer", "cannot cross"}},
		{"gob: chans in a slice field", func(n string) { task.Define(n, echo[withChanSlice], task.WithCodec(gobcodec.Codec)) }, []string{"chan int", "task_test.withChanSlice"}},
		{"gob: funcs in a map", func(n string) { task.Define(n, echo[map[string]func()], task.WithCodec(gobcodec.Codec)) }, []string{"func()"}},
		{"gob: no exported fields", func(n string) { task.Define(n, echo[holdsNoExported], task.WithCodec(gobcodec.Codec)) }, []string{"task_test.noExported", "no exported fields", "GobEncode"}},
		{"json: chan", func(n string) { task.Define(n, echo[chan int]) }, []string{"json", "chan int"}},
		{"json, named: chan", func(n string) { task.Define(n, echo[chan int], task.WithCodec(task.JSON)) }, []string{"json", "chan int"}},
		{"json: func in a struct", func(n string) {
			task.Define(n, echo[struct{ F func() }], task.WithCodec(task.JSON))
		}, []string{"json", "func()"}},
		{"json: complex", func(n string) { task.Define(n, echo[withComplex], task.WithCodec(task.JSON)) }, []string{"json", "complex64", "task_test.withComplex"}},
		{"json: map key", func(n string) { task.Define(n, echo[map[[2]int]string], task.WithCodec(task.JSON)) }, []string{"json", "[2]int", "map key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "task_test.refused"
			msg := panicText(t, func() { tc.define(name) })
			assert.Contains(t, msg, fmt.Sprintf("task: Define(%q)", name))
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			assert.False(t, defined(name), "a refused definition must not be registered")
		})
	}
}

// What the codecs can carry is not refused.
func TestDefineTakesTypesTheCodecCarries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		define func(name string)
	}{
		{"gob: chan field, left out", func(n string) { task.Define(n, echo[chanField], task.WithCodec(gobcodec.Codec)) }},
		{"gob: time.Time", func(n string) { task.Define(n, echo[time.Time], task.WithCodec(gobcodec.Codec)) }},
		{"gob: struct{}", func(n string) { task.Define(n, echo[struct{}], task.WithCodec(gobcodec.Codec)) }},
		{"gob: error result", func(n string) {
			task.Define(n, func(ctx context.Context, _ int) (error, error) { return nil, nil }, task.WithCodec(gobcodec.Codec))
		}},
		{"gob: any in a slice", func(n string) { task.Define(n, echo[[]any], task.WithCodec(gobcodec.Codec)) }},
		{"json: any", func(n string) { task.Define(n, echo[any]) }},
		{"json: chan left out by its tag", func(n string) { task.Define(n, echo[skippedChan], task.WithCodec(task.JSON)) }},
		{"json: error field", func(n string) { task.Define(n, echo[withErrors], task.WithCodec(task.JSON)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("task_test.accepted.%d", duplicates.Add(1))
			tc.define(name)
			assert.True(t, defined(name), "%s is not defined", name)
		})
	}
}

// withErrors holds errors where a result may: a field, a slice, a map and
// a pointer.
type withErrors struct {
	N      int
	Err    error
	Errs   []error
	ByName map[string]error
	Inner  *innerErr
}

type innerErr struct{ Err error }

// libraryErr wraps two of the library's sentinels (one of which wraps a
// third) and a context's, under a message of its own.
func libraryErr(msg string) error {
	return fmt.Errorf("%s: %w", msg, errors.Join(task.ErrNotInChild, fmt.Errorf("deeper: %w", dispatcher.ErrStalled), context.DeadlineExceeded))
}

func returnErrors(ctx context.Context, msg string) (withErrors, error) {
	if msg == "" {
		return withErrors{N: 1}, nil
	}
	e := libraryErr(msg)
	return withErrors{N: 2, Err: e, Errs: []error{nil, e}, ByName: map[string]error{"a": e, "none": nil}, Inner: &innerErr{Err: e}}, nil
}

var (
	errorResult = task.Define("task_test.error.result", func(ctx context.Context, msg string) (error, error) {
		if msg == "" {
			return nil, nil
		}
		return libraryErr(msg), nil
	})
	errorFieldsGob  = task.Define("task_test.error.fields.gob", returnErrors, task.WithCodec(gobcodec.Codec))
	errorFieldsJSON = task.Define("task_test.error.fields.json", returnErrors)
)

// checkCrossed checks that err, which crossed from a child, kept its
// message and the library's sentinels in its chain.
func checkCrossed(t *testing.T, err error, msg, where string) {
	t.Helper()
	want := libraryErr(msg)
	require.Error(t, err, "%s: nil; want the task's error", where)
	assert.Equal(t, want.Error(), err.Error(), "%s: the message", where)
	assert.ErrorIs(t, err, task.ErrNotInChild, "%s", where)
	assert.ErrorIs(t, err, dispatcher.ErrStalled, "%s", where)
	assert.ErrorIs(t, err, dispatcher.ErrClosed, "%s: ErrStalled wraps it", where)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "%s", where)
	assert.NotErrorIs(t, err, dispatcher.ErrKilled, "%s: a sentinel that was not in the chain", where)
	assert.NotErrorIs(t, err, procman.ErrNoMain, "%s: a sentinel that was not in the chain", where)
}

// TestErrorsInResultsCrossWithTheirSentinels: an error in a task's result reaches the parent as an
// error with the same message, for which errors.Is finds the library's
// sentinels (and the context's) that were in its chain in the child.
func TestErrorsInResultsCrossWithTheirSentinels(t *testing.T) {
	leakcheck.Check(t)
	d := startDispatcher(t, strategy.Throttled(2))
	t.Run("the result is an error", func(t *testing.T) {
		err, taskErr := errorResult.Schedule(d, "it broke").Value()
		require.NoError(t, taskErr, "the task's own error")
		checkCrossed(t, err, "it broke", "the result")

		err, taskErr = errorResult.Schedule(d, "").Value()
		require.NoError(t, taskErr)
		assert.True(t, err == nil, "a nil error result arrived as %#v; want nil", err)
	})
	for codec, def := range map[string]*task.Def[string, withErrors]{"gob": errorFieldsGob, "json": errorFieldsJSON} {
		t.Run("in fields, "+codec, func(t *testing.T) {
			v, err := def.Schedule(d, "field").Value()
			require.NoError(t, err)
			assert.Equal(t, 2, v.N)
			checkCrossed(t, v.Err, "field", "Err")
			require.Len(t, v.Errs, 2)
			assert.True(t, v.Errs[0] == nil, "Errs[0] = %#v; want nil", v.Errs[0])
			checkCrossed(t, v.Errs[1], "field", "Errs[1]")
			require.Len(t, v.ByName, 2)
			checkCrossed(t, v.ByName["a"], "field", `ByName["a"]`)
			assert.True(t, v.ByName["none"] == nil, `ByName["none"] = %#v; want nil`, v.ByName["none"])
			require.NotNil(t, v.Inner)
			checkCrossed(t, v.Inner.Err, "field", "Inner.Err")

			v, err = def.Schedule(d, "").Value()
			require.NoError(t, err)
			assert.Equal(t, withErrors{N: 1}, v, "a result without errors")
		})
	}
}
