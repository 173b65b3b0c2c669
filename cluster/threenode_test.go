package cluster_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
)

// startCluster starts a JetStream cluster of n embedded nodes, each with
// a client listener, shut down when the test ends.
func startCluster(t *testing.T, n int) []*embedded.Node {
	t.Helper()
	var addrs, routes []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addrs = append(addrs, ln.Addr().String())
		routes = append(routes, "nats://"+ln.Addr().String())
		require.NoError(t, ln.Close())
	}
	nodes := make([]*embedded.Node, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			nodes[i], err = embedded.Start(context.Background(), t.TempDir(),
				embedded.Name(fmt.Sprintf("n%d", i+1)),
				embedded.Listen("127.0.0.1:0"),
				embedded.Cluster("test", addrs[i], routes...))
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	for _, node := range nodes {
		t.Cleanup(node.Shutdown)
	}
	return nodes
}

// A three-node cluster whose calls-stream leader is killed in the middle
// of a run: the work goes on on the other two, and no call is lost.
func TestThreeNodeClusterLosesItsLeader(t *testing.T) {
	leakcheck.Check(t)
	nodes := startCluster(t, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL())
	}
	all := strings.Join(urls, ",")
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	cfg := cluster.Config{Replicas: 3, AckWait: 2 * time.Second, PublishTimeout: 30 * time.Second}
	c := newClient(t, connect(t, all, opts...), cfg)
	startWorker(t, connect(t, all, opts...), 2, cluster.WithConfig(cfg), cluster.WorkerName("a"))
	startWorker(t, connect(t, all, opts...), 2, cluster.WithConfig(cfg), cluster.WorkerName("b"))

	const n = 60
	var rs []*result.Result[int]
	for i := range n {
		rs = append(rs, square.Schedule(c, i))
	}
	for i := range n / 3 {
		_, err := rs[i].Value()
		require.NoError(t, err)
	}
	leader := -1
	for i, node := range nodes {
		if node.Server().JetStreamIsStreamLeader("$G", "PROCRASTINATE_CALLS") {
			leader = i
		}
	}
	require.NotEqual(t, -1, leader, "a node leads the calls stream")
	nodes[leader].Shutdown()

	for i := range n {
		rs = append(rs, square.Schedule(c, n+i))
	}
	for i, r := range rs {
		v, err := r.Value()
		require.NoError(t, err, "call %d", i)
		require.Equal(t, i*i, v, "call %d", i)
	}
}
