package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var internalSquare = task.Define("cluster.internal-square", func(ctx context.Context, n int) (int, error) {
	return n * n, nil
})

// startInternal starts an embedded node, a client on it with cfg and a
// dispatcher of one child for a worker to serve, each ended when the test ends (the
// dispatcher first, the node last), and returns the node's connection,
// the client and the dispatcher.
func startInternal(t *testing.T, cfg Config) (*nats.Conn, *Client, *dispatcher.Dispatcher) {
	t.Helper()
	node, err := embedded.Start(context.Background(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(node.Shutdown)
	c, err := New(context.Background(), node.Conn(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	d, err := dispatcher.Start(strategy.Throttled(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return node.Conn(), c, d
}

// A malformed message on the calls stream fails its call with a clear
// error (or, when it names no call, only goes to the dead letters), and
// the worker goes on serving.
func TestMalformedCalls(t *testing.T) {
	leakcheck.Check(t)
	nc, c, d := startInternal(t, Config{})
	ctx := context.Background()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- Serve(sctx, nc, d, MaxCallSize(1024), WorkerName("w")) }()
	defer func() {
		stop()
		require.NoError(t, <-served)
	}()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	results, err := js.Stream(ctx, "PROCRASTINATE_RESULTS")
	require.NoError(t, err)

	good := func(id string) nats.Header {
		return nats.Header{hdrCall: {"1"}, hdrTask: {internalSquare.Name()}, hdrID: {id}, hdrMaxDeliver: {"3"}}
	}
	arg, err := task.JSON.Marshal(5)
	require.NoError(t, err)
	deadBefore := uint64(0)
	for i, tc := range []struct {
		name   string
		header func(nats.Header)
		data   []byte
		want   string // in the error; empty: no result, only a dead letter
	}{
		{"no headers", func(h nats.Header) { clear(h) }, []byte("garbage"), ""},
		{"bad id", func(h nats.Header) { h.Set(hdrID, "not an id") }, arg, ""},
		{"jetstream headers", func(h nats.Header) { clear(h); h.Set("Nats-Expected-Stream", "PROCRASTINATE_CALLS") }, arg, ""},
		{"no task", func(h nats.Header) { h.Del(hdrTask) }, arg, "the header Procrastinate-Task is missing"},
		{"bad version", func(h nats.Header) { h.Set(hdrCall, "2") }, arg, "this worker reads version 1"},
		{"bad deadline", func(h nats.Header) { h.Set(hdrDeadline, "soon") }, arg, `the header Procrastinate-Deadline "soon"`},
		{"bad limits", func(h nats.Header) { h.Set(hdrLimits, "{not json") }, arg, "the header Procrastinate-Limits is not the JSON"},
		{"bad retries", func(h nats.Header) { h.Set(hdrRetries, "-1") }, arg, "Procrastinate-Retries"},
		{"oversized", func(h nats.Header) {}, make([]byte, 2000), "over this worker's limit of 1024"},
		{"undecodable argument", func(h nats.Header) {}, []byte("\xff\x00 not gob"), "decoding the argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "bad." + strconv.Itoa(i)
			h := good(id)
			tc.header(h)
			_, err = js.PublishMsg(ctx, &nats.Msg{Subject: "procrastinate.calls", Header: h, Data: tc.data})
			require.NoError(t, err)
			if tc.want == "" {
				require.Eventually(t, func() bool { return deadLetters(t, js) > deadBefore }, 10*time.Second, time.Millisecond, "a dead letter")
				deadBefore = deadLetters(t, js)
				return
			}
			var stored *jetstream.RawStreamMsg
			require.Eventually(t, func() bool {
				stored, err = results.GetLastMsgForSubject(ctx, "procrastinate.results.c."+id)
				return err == nil
			}, 10*time.Second, time.Millisecond, "a result for the call")
			_, err = decodeResult(stored.Header, stored.Data)
			require.ErrorContains(t, err, tc.want)
			var we *WorkerError
			require.ErrorAs(t, err, &we)
			if tc.name == "undecodable argument" {
				var te *result.TaskError
				require.ErrorAs(t, err, &te, "the child could not decode the argument")
				return
			}
			var dl *DeadLetterError
			require.ErrorAs(t, err, &dl)
			require.ErrorIs(t, err, ErrMalformedCall)
			deadBefore = deadLetters(t, js)
		})
	}
	v, err := internalSquare.Schedule(c, 9).Value()
	require.NoError(t, err, "the worker serves after the malformed calls")
	require.Equal(t, 81, v)
}

func deadLetters(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), "PROCRASTINATE_DEAD")
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// parseHeaders reads "Key: value" lines, as a fuzzer writes them.
func parseHeaders(s string) nats.Header {
	h := nats.Header{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h
}

// decodeCall never panics, and what it accepts encodes back to itself.
func FuzzDecodeCall(f *testing.F) {
	full := wireCall{Task: "t", ID: "abc.1", Key: "k.1", Deadline: time.Unix(0, 1700000000000000000), Retries: 2,
		RetryDelay: time.Millisecond, Activity: time.Second, MaxDeliver: 5, Cancellable: true, Arg: []byte("arg"),
		Limits: &wireLimits{AddressSpace: 1 << 30, CPUTimeNs: int64(time.Second), Nice: 5, Dir: "/tmp", Env: []string{"A=B"}}}
	var seed strings.Builder
	for k, vs := range full.encode("s").Header {
		for _, v := range vs {
			seed.WriteString(k + ": " + v + "\n")
		}
	}
	f.Add(seed.String(), []byte("arg"))
	f.Add("Procrastinate-Id: a.1\nProcrastinate-Task: t\nProcrastinate-Call: 1", []byte{})
	f.Add("Procrastinate-Id: a.1\nProcrastinate-Task: t\nProcrastinate-Call: 1\nProcrastinate-Limits: {\"env\":[1]}", []byte{0xff})
	f.Add("Procrastinate-Id: ..\nProcrastinate-Deadline: -5", []byte(nil))
	f.Add("Procrastinate-Id: a.1\nProcrastinate-Task: t\nProcrastinate-Call: 1\nProcrastinate-Retry-Delay: 5\nProcrastinate-Limits: {\"env\":[]}", []byte{})
	f.Fuzz(func(t *testing.T, headers string, data []byte) {
		c, err := decodeCall(parseHeaders(headers), data, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrMalformedCall) {
				t.Fatalf("decodeCall error %v does not wrap ErrMalformedCall", err)
			}
			return
		}
		m := c.encode("s")
		again, err := decodeCall(m.Header, m.Data, 1<<20)
		if err != nil {
			t.Fatalf("decodeCall(encode(%+v)) = %v; want the call back", c, err)
		}
		require.Equal(t, c, again, "decodeCall(encode(c))")
	})
}

// A malformed answer on a client's answer subject never crashes the
// client: one that names no call of the client is dropped, and one that
// names a waiting call without a status it knows fails that call with an
// error that says so. The client replies to each, so that no worker
// stores it again.
func TestMalformedAnswers(t *testing.T) {
	leakcheck.Check(t)
	nc, c, _ := startInternal(t, Config{})
	r := internalSquare.Schedule(c, 3) // no worker serves: it waits

	for _, subject := range []string{
		"procrastinate.answers." + c.id + ".not-a-number",
		"procrastinate.answers." + c.id + ".999999",
	} {
		_, err := nc.Request(subject, []byte("garbage"), 10*time.Second)
		require.NoError(t, err, "the client's reply to an answer on %s", subject)
		require.False(t, r.Ready(), "the call resolved by an answer on %s, which is not its", subject)
	}

	_, err := nc.Request("procrastinate.answers."+c.id+".1", []byte("garbage"), 10*time.Second)
	require.NoError(t, err, "the client's reply to an answer without headers")
	_, err = r.Value()
	var we *WorkerError
	require.ErrorAs(t, err, &we)
	require.ErrorContains(t, err, `a result with the status ""`)
}
