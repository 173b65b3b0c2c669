package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/task"
)

// caller plays a Client on nc: it publishes calls of internalSquare under
// its own id, and takes the answers that workers send it directly, which
// it confirms only when told to.
type caller struct {
	t        *testing.T
	nc       *nats.Conn
	js       jetstream.JetStream
	id       string
	answers  chan *nats.Msg
	sub      *nats.Subscription
	silent   bool // take answers, never confirm them
	released chan struct{}
}

// newCaller starts a caller with id; with silent, it confirms no answer.
func newCaller(t *testing.T, nc *nats.Conn, id string, silent bool) *caller {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	c := &caller{t: t, nc: nc, js: js, id: id, answers: make(chan *nats.Msg, 16), silent: silent, released: make(chan struct{})}
	c.sub, err = nc.Subscribe("procrastinate.answers."+id+".*", func(m *nats.Msg) { c.answers <- m })
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.sub.Unsubscribe() })
	return c
}

// schedule publishes the call number n of internalSquare with argument a.
func (c *caller) schedule(n, a int) {
	c.t.Helper()
	arg, err := task.JSON.Marshal(a)
	require.NoError(c.t, err)
	w := wireCall{Task: internalSquare.Name(), Arg: arg, ID: c.id + "." + strconv.Itoa(n), MaxDeliver: 5}
	_, err = c.js.PublishMsg(context.Background(), w.encode("procrastinate.calls"))
	require.NoError(c.t, err)
}

// answer waits for the next answer, and returns its call number.
func (c *caller) answer() (*nats.Msg, int) {
	c.t.Helper()
	select {
	case m := <-c.answers:
		n, err := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
		require.NoError(c.t, err, "the number of the call that %s answers", m.Subject)
		return m, n
	case <-time.After(20 * time.Second):
		c.t.Fatal("no answer within 20s")
		return nil, 0
	}
}

// calls returns the workers' consumer of the calls.
func calls(t *testing.T, nc *nats.Conn) jetstream.Consumer {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(context.Background(), "PROCRASTINATE_CALLS", "workers")
	require.NoError(t, err)
	return cons
}

// storedResults returns how many results the results stream holds.
func storedResults(t *testing.T, nc *nats.Conn) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(context.Background(), "PROCRASTINATE_RESULTS")
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// serveInternal runs Serve on nc and d with opts until the test ends.
func serveInternal(t *testing.T, nc *nats.Conn, d *dispatcher.Dispatcher, opts ...ServeOption) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, nc, d, opts...) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-served)
	})
}

// A worker's slot is free again once the call's answer is on its way to
// its caller: the worker takes its next call while the caller has not
// confirmed the last answer yet, and acks neither call before the caller
// confirms its answer. A confirmed answer is not stored.
func TestSlotFreeWhileAnswerIsConfirmed(t *testing.T) {
	leakcheck.Check(t)
	nc, _, d := startInternal(t, Config{})
	ctx := context.Background()
	c := newCaller(t, nc, "held", false)
	serveInternal(t, nc, d, Slots(1))

	c.schedule(1, 2)
	c.schedule(2, 3)
	var held []*nats.Msg
	for range 2 {
		m, n := c.answer()
		v, err := decodeResult(m.Header, m.Data)
		require.NoError(t, err, "call %d's answer", n)
		want, err := task.JSON.Marshal((n + 1) * (n + 1))
		require.NoError(t, err)
		require.Equal(t, string(want), string(v), "call %d's answer", n)
		held = append(held, m)
	}
	info, err := calls(t, nc).Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, info.NumAckPending, "calls not acked while their answers wait for the caller's confirmation; want both")

	for _, m := range held {
		require.NoError(t, m.Respond(nil))
	}
	require.Eventually(t, func() bool {
		info, err := calls(t, nc).Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, 10*time.Second, time.Millisecond, "both calls acked once the caller confirmed their answers")
	require.Zero(t, storedResults(t, nc), "results stored of answers that their caller confirmed")
}

// An answer whose caller is gone (no one listens for it), or does not
// confirm it (cut off), is stored in the results stream, where the
// caller finds it when it comes back, and the call is acked.
func TestUnconfirmedAnswerIsStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen bool
	}{{"caller gone", false}, {"caller silent", true}} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			nc, _, d := startInternal(t, Config{AckWait: 400 * time.Millisecond})
			ctx := context.Background()
			id := "gone"
			if tc.listen {
				id = "silent"
				newCaller(t, nc, id, true)
			} else {
				_ = newCaller(t, nc, "other", true) // a caller, not this call's
			}
			c := &caller{t: t, nc: nc, id: id}
			var err error
			c.js, err = jetstream.New(nc)
			require.NoError(t, err)
			serveInternal(t, nc, d, Slots(1))

			c.schedule(1, 4)
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			s, err := js.Stream(ctx, "PROCRASTINATE_RESULTS")
			require.NoError(t, err)
			var stored *jetstream.RawStreamMsg
			require.Eventually(t, func() bool {
				stored, err = s.GetLastMsgForSubject(ctx, "procrastinate.results.c."+id+".1")
				return err == nil
			}, 20*time.Second, 5*time.Millisecond, "the unconfirmed answer stored in the results stream")
			v, err := decodeResult(stored.Header, stored.Data)
			require.NoError(t, err)
			want, err := task.JSON.Marshal(16)
			require.NoError(t, err)
			require.Equal(t, string(want), string(v), "the stored answer")
			require.Eventually(t, func() bool {
				info, err := calls(t, nc).Info(ctx)
				return err == nil && info.NumAckPending == 0 && info.NumPending == 0
			}, 10*time.Second, time.Millisecond, "the call acked once its answer was stored")
		})
	}
}
