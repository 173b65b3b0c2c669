package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// An argument over the server's maximum message size is refused at
// Schedule, with an error that names the limit and how to raise it; a
// result over it fails its call with an error that says the same.
func TestPayloadOverMaxPayload(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t, embedded.MaxPayload(64<<10))
	c := newClient(t, node.Conn(), cluster.Config{})
	startWorker(t, node.Conn(), 1)

	r := echo.Schedule(c, make([]byte, 100<<10))
	require.True(t, r.Ready(), "a call over max_payload fails at Schedule")
	_, err := r.Value()
	require.ErrorContains(t, err, "65536 bytes (max_payload)")
	require.ErrorContains(t, err, "embedded.MaxPayload")

	v, err := echo.Schedule(c, make([]byte, 60<<10)).Value()
	require.NoError(t, err)
	require.Len(t, v, 60<<10, "a call under the limit")

	_, err = bigAnswer.Schedule(c, 100<<10).Value()
	var we *cluster.WorkerError
	require.ErrorAs(t, err, &we)
	require.ErrorContains(t, err, "the result is")
	require.ErrorContains(t, err, "max_payload")
}

// Schedule never waits on the network: with the server cut off, calls are
// scheduled at once and fail when the server does not confirm them
// within Config.PublishTimeout.
func TestStalledPublishFailsTheCall(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t, embedded.Listen("127.0.0.1:0"))
	p := startProxy(t, node.URL())
	nc := connect(t, p.url())
	c := newClient(t, nc, cluster.Config{PublishTimeout: 300 * time.Millisecond})

	p.freeze()
	r := square.Schedule(c, 3)
	_, err := r.Value()
	require.ErrorIs(t, err, jetstream.ErrAsyncPublishTimeout)
	require.ErrorContains(t, err, "did not confirm it within 300ms (Config.PublishTimeout)")
	p.thaw()
}

// A publish that no stream takes fails the call with an error that says
// so.
func TestFailedPublishFailsTheCall(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{PublishTimeout: 600 * time.Millisecond})
	js, err := jetstream.New(node.Conn())
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(context.Background(), "PROCRASTINATE_CALLS"))

	_, err = square.Schedule(c, 3).Value()
	require.ErrorContains(t, err, "no JetStream server took it")
	require.ErrorContains(t, err, "PROCRASTINATE_CALLS")

	nc, err := nats.Connect("", nats.InProcessServer(node.Server()))
	require.NoError(t, err)
	closed := newClient(t, nc, cluster.Config{})
	nc.Close()
	_, err = square.Schedule(closed, 3).Value()
	require.ErrorContains(t, err, "publishing the call")
	require.ErrorContains(t, err, nats.ErrConnectionClosed.Error())
}
