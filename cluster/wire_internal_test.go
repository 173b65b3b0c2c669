package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
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

// A result's log lines cross as one header value, whatever they hold,
// and a reader keeps no more than a future holds, whatever a worker
// sent.
func TestWireLogIsBounded(t *testing.T) {
	lines := []string{"INFO a\r\nb", "WARN \x00 tab\there"}
	got := decodeLog(encodeLog(lines))
	require.Equal(t, lines, got, "lines with control characters, crossed")
	require.NotContains(t, encodeLog(lines), "\n", "the header value holds no line break")
	require.Empty(t, encodeLog(nil), "the header of no lines")

	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("line %d %s", i, strings.Repeat("x", 1000)))
	}
	b, err := json.Marshal(many) // as a worker that does not bound them would send
	require.NoError(t, err)
	got = decodeLog(string(b))
	require.Len(t, got, maxLogLines, "lines kept of 100 sent")
	require.True(t, strings.HasPrefix(got[0], "line 80 "), "the oldest line kept: %.20q", got[0])
	for _, l := range got {
		require.Len(t, l, maxLogLine, "a line kept of 1000 bytes and more")
	}
	require.Nil(t, decodeLog(`["not closed"`), "a header that does not read")
}

// storeExtra counts exactly the bytes that forStore adds to a result, so
// that the size check of an answer holds for its stored form too.
func TestStoreExtraCountsWhatForStoreAdds(t *testing.T) {
	c := &wireCall{ID: "client.42", Task: "pkg.some-task"}
	m := &nats.Msg{Subject: "s", Header: nats.Header{hdrWorker: []string{"w"}, hdrStatus: []string{statusOK}}, Data: []byte("answer")}
	before := msgSize(m)
	forStore(m.Header, c.ID, c.Task)
	require.Equal(t, before+storeExtra(c), msgSize(m), "the size of a stored result: its size as sent plus storeExtra")
}
