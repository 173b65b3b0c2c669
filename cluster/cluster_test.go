package cluster_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
)

func TestRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	startWorker(t, node.Conn(), 2, cluster.WorkerName("w1"))

	v, err := square.Schedule(c, 7).Value()
	require.NoError(t, err)
	require.Equal(t, 49, v, "square(7) through the cluster")

	_, err = fails.Schedule(c, "no luck").Value()
	var we *cluster.WorkerError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "w1", we.Worker)
	var te *result.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "no luck", te.Message)
}
