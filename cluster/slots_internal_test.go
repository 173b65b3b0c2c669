package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
)

// heldConfirmations is a JetStream context whose asynchronous publishes
// report the server's answer only once gate is closed.
type heldConfirmations struct {
	jetstream.JetStream
	gate <-chan struct{}
}

func (h heldConfirmations) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	paf, err := h.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	held := heldPAF{PubAckFuture: paf, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		<-h.gate
		select {
		case a := <-paf.Ok():
			held.ok <- a
		case err := <-paf.Err():
			held.err <- err
		}
	}()
	return held, nil
}

type heldPAF struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func (p heldPAF) Ok() <-chan *jetstream.PubAck { return p.ok }
func (p heldPAF) Err() <-chan error            { return p.err }

// A worker's slot is free again once the call's answer is on its way to
// the results stream: the worker takes its next call while the server has
// not confirmed the last result yet, and acks neither call before the
// server confirms its result.
func TestSlotFreeWhileResultIsStored(t *testing.T) {
	leakcheck.Check(t)
	nc, c, d := startInternal(t)
	ctx := context.Background()

	gate := make(chan struct{})
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	defer open()
	hold := serveOptionFunc(func(sc *serveConfig) {
		sc.wrapJS = func(js jetstream.JetStream) jetstream.JetStream { return heldConfirmations{JetStream: js, gate: gate} }
	})
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- Serve(sctx, nc, d, Slots(1), hold) }()
	defer func() {
		open()
		stop()
		require.NoError(t, <-served)
	}()

	first := internalSquare.Schedule(c, 2)
	second := internalSquare.Schedule(c, 3)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(ctx, "PROCRASTINATE_CALLS", "workers")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 2 && info.NumPending == 0
	}, 10*time.Second, time.Millisecond,
		"a one-slot worker took its second call while the server's confirmation of the first call's result was held; want both taken, neither acked")

	open()
	for i, r := range []*result.Result[int]{first, second} {
		v, err := r.Value()
		require.NoError(t, err)
		require.Equal(t, (i+2)*(i+2), v, "call %d's answer", i)
	}
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0
	}, 10*time.Second, time.Millisecond, "both calls acked once the server's confirmations came")
}
