package embedded_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A node has JetStream and no TCP listener unless asked for one.
func TestNoListenerUnlessAsked(t *testing.T) {
	leakcheck.Check(t)
	node, err := embedded.Start(context.Background(), t.TempDir())
	require.NoError(t, err)
	defer node.Shutdown()
	require.Empty(t, node.URL(), "the URL of a node without Listen")
	require.Nil(t, node.Server().Addr(), "the client listener of a node without Listen")

	js, err := jetstream.New(node.Conn())
	require.NoError(t, err)
	_, err = js.AccountInfo(context.Background())
	require.NoError(t, err, "JetStream through the in-process connection")
}

// An address without a host binds to the loopback address.
func TestListenBindsLoopbackByDefault(t *testing.T) {
	leakcheck.Check(t)
	node, err := embedded.Start(context.Background(), t.TempDir(), embedded.Listen(":0"))
	require.NoError(t, err)
	defer node.Shutdown()
	u, err := url.Parse(node.URL())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", u.Hostname(), "the host of %s", node.URL())

	nc, err := nats.Connect(node.URL())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Flush())
}

// A node started again on the same store finds its streams and messages.
func TestRestartKeepsTheStore(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	ctx := context.Background()
	node, err := embedded.Start(ctx, dir)
	require.NoError(t, err)
	js, err := jetstream.New(node.Conn())
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "s", []byte("kept"))
	require.NoError(t, err)
	node.Shutdown()
	node.Shutdown() // again: nothing

	node, err = embedded.Start(ctx, dir)
	require.NoError(t, err)
	defer node.Shutdown()
	js, err = jetstream.New(node.Conn())
	require.NoError(t, err)
	s, err := js.Stream(ctx, "S")
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "kept", string(m.Data))
}

// Bad options and a server that gives up fail Start with a reason.
func TestStartFails(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	_, err := embedded.Start(ctx, "")
	require.ErrorContains(t, err, "empty store directory")
	_, err = embedded.Start(ctx, t.TempDir(), embedded.Listen("4222"))
	require.ErrorContains(t, err, "not host:port")
	_, err = embedded.Start(ctx, t.TempDir(), embedded.MaxPayload(0))
	require.ErrorContains(t, err, "MaxPayload(0)")
	_, err = embedded.Start(ctx, t.TempDir(), embedded.Cluster("c", "127.0.0.1:0", "not a url"))
	require.ErrorContains(t, err, "not a URL")

	// JetStream in a cluster needs routes: the server gives up at start.
	start := time.Now()
	_, err = embedded.Start(ctx, t.TempDir(), embedded.Name("alone"), embedded.Cluster("c", "127.0.0.1:0"))
	require.ErrorContains(t, err, "routes")
	require.Less(t, time.Since(start), 20*time.Second, "how long Start took to give up")
}
