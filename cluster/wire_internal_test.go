package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
)

// crossed sends err through its wire form, as a worker and a client do.
func crossed(t *testing.T, err error) error {
	t.Helper()
	b, jerr := json.Marshal(toWire(err))
	require.NoError(t, jerr)
	var w wireError
	require.NoError(t, json.Unmarshal(b, &w))
	return fromWire(&w)
}

// The library's sentinels keep their identity across the wire, alone,
// inside the error types, and inside errors of other kinds.
func TestWireSentinels(t *testing.T) {
	for name, s := range sentinels() {
		t.Run(name, func(t *testing.T) {
			got := crossed(t, s)
			require.True(t, got == s, "crossed(%v) = %#v; want the sentinel itself", s, got)

			wrapped := crossed(t, fmt.Errorf("doing a thing: %w", s))
			require.ErrorIs(t, wrapped, s)
			require.Equal(t, "doing a thing: "+s.Error(), wrapped.Error())

			death := crossed(t, &result.ChildDeath{Task: "t", Pid: 7, Signal: syscall.SIGKILL, ExitCode: -1, Err: s})
			require.ErrorIs(t, death, s)
		})
	}
	require.ErrorIs(t, crossed(t, dispatcher.ErrStalled), dispatcher.ErrClosed, "ErrStalled wraps ErrClosed")
}

// Every field of the library's error types crosses the wire.
func TestWireErrorTypes(t *testing.T) {
	death := &result.ChildDeath{Task: "t", Pid: 7, ExitCode: 3, Duration: 12 * time.Millisecond,
		Stderr: []byte("oops\n"), Limit: "CPU time", Err: dispatcher.ErrKilled}
	for _, err := range []error{
		&result.TaskError{Task: "t", Pid: 9, Message: "no luck", Panicked: true, Stack: "goroutine 1"},
		death,
		&result.RetryError{Task: "t", Deaths: []*result.ChildDeath{death, {Task: "t", Pid: 8, Signal: syscall.SIGSEGV, ExitCode: -1}}},
		&result.CancelError{Task: "t", Cause: context.Canceled, Started: true, Pid: 5, Sent: []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}},
		&DeadLetterError{Task: "t", ID: "c.1", Deliveries: 5, Reason: "why", Cause: ErrTooManyDeliveries},
	} {
		t.Run(fmt.Sprintf("%T", err), func(t *testing.T) {
			got := crossed(t, err)
			require.Equal(t, err, got, "the error rebuilt from its wire form")
			require.Equal(t, err.Error(), got.Error())
		})
	}
}

// An error of a kind that the reader does not know keeps its text.
func TestWireUnknownKind(t *testing.T) {
	got := fromWire(&wireError{Kind: "from-the-future", Message: "something new"})
	require.EqualError(t, got, "something new")
	require.False(t, errors.Is(got, dispatcher.ErrClosed))
}
