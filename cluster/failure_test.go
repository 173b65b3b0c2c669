package cluster_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// killsWorker SIGKILLs the worker process that runs it: a poison call.
	killsWorker = task.Define("cluster_test.kills-worker", func(ctx context.Context, _ int) (int, error) {
		_ = syscall.Kill(os.Getppid(), syscall.SIGKILL)
		os.Exit(0)
		return 0, nil
	})
	// clientOnly is defined in the test process and its task children,
	// and not in worker processes: a task that a rolling deploy has not
	// brought to every worker yet.
	clientOnly = func() *task.Def[int, int] {
		if os.Getenv(envWorkerURL) != "" {
			return nil
		}
		return task.Define("cluster_test.client-only", func(ctx context.Context, n int) (int, error) {
			return n + 1, nil
		})
	}()
)

// connect connects to url, closed when the test ends.
func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// consumerInfo returns the state of the workers' consumer.
func consumerInfo(t *testing.T, nc *nats.Conn) *jetstream.ConsumerInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(context.Background(), "PROCRASTINATE_CALLS", "workers")
	require.NoError(t, err)
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	return info
}

// streamMsgs returns how many messages a stream holds.
func streamMsgs(t *testing.T, nc *nats.Conn, name string) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(context.Background(), name)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// A worker takes only as many calls as it has free slots: the others stay
// in the stream, where another worker can take them, and no call waits in
// a worker's buffer while its ack wait runs.
func TestWorkerTakesOnlyFreeSlots(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	g := newGate(t)
	startWorker(t, node.Conn(), 2)

	var rs []*result.Result[string]
	for range 5 {
		rs = append(rs, hold.Schedule(c, g.arg()))
	}
	g.waitStarted(t, 2)
	g.noneStarted(t, 300*time.Millisecond)
	info := consumerInfo(t, node.Conn())
	require.Equal(t, 2, info.NumAckPending, "calls delivered and not acked; want the worker's 2 slots")
	require.Equal(t, uint64(3), info.NumPending, "calls left in the stream")

	startWorker(t, node.Conn(), 1)
	g.waitStarted(t, 1)
	g.letGo(t, 5)
	g.waitStarted(t, 2)
	for _, r := range rs {
		_, err := r.Value()
		require.NoError(t, err)
	}
}

// A worker process SIGKILLed in the middle of a call: the call goes to the
// other worker after one ack wait, and its future resolves once, with the
// other worker's answer. While the call runs, the worker renews its lease,
// so a call that runs many ack waits is not given to another worker.
func TestWorkerKilledMidCall(t *testing.T) {
	leakcheck.Check(t)
	const ackWait = 500 * time.Millisecond
	node := startNode(t, embedded.Listen("127.0.0.1:0"))
	c := newClient(t, node.Conn(), cluster.Config{AckWait: ackWait})
	g := newGate(t)

	first := startWorkerProc(t, node.URL(), "first", ackWait)
	r := holdWho.Schedule(c, g.arg())
	g.waitStarted(t, 1)
	// Four ack waits with the call running: no redelivery.
	g.noneStarted(t, 4*ackWait)
	require.Zero(t, consumerInfo(t, node.Conn()).NumRedelivered, "calls redelivered while their worker renewed their lease")

	startWorkerProc(t, node.URL(), "second", ackWait)
	first.kill(t)
	g.waitStarted(t, 1)
	g.letGo(t, 1)
	who, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, "second", who, "the worker that answered")
	require.Eventually(t, func() bool { return consumerInfo(t, node.Conn()).NumAckPending == 0 }, 20*time.Second, time.Millisecond,
		"the call acked once its answer reached the client")
	require.Zero(t, streamMsgs(t, node.Conn(), "PROCRASTINATE_RESULTS"), "results stored of a call whose client took its answer")
}

// A worker that cannot renew its lease (cut off from the server) stops its
// call itself within an ack wait, while the server gives the call to
// another worker.
func TestWorkerThatCannotRenewStopsItsCall(t *testing.T) {
	leakcheck.Check(t)
	const ackWait = 500 * time.Millisecond
	node := startNode(t, embedded.Listen("127.0.0.1:0"))
	c := newClient(t, node.Conn(), cluster.Config{AckWait: ackWait})
	g := newGate(t)

	p := startProxy(t, node.URL())
	cutOff := connect(t, p.url())
	w := startWorker(t, cutOff, 1, cluster.WorkerName("cut-off"))
	r := hold.Schedule(c, g.arg())
	g.waitStarted(t, 1)

	p.freeze()
	g.waitStopped(t, 1)
	startWorker(t, node.Conn(), 1, cluster.WorkerName("other"))
	g.waitStarted(t, 1)
	g.letGo(t, 1)
	_, err := r.Value()
	require.NoError(t, err)

	p.thaw()
	w.stop(t)
}

// A call that kills every worker that takes it goes to the dead letters
// after Config.MaxDeliver deliveries; its future fails and says so.
func TestPoisonCallGoesToDeadLetters(t *testing.T) {
	leakcheck.Check(t)
	const ackWait = 300 * time.Millisecond
	node := startNode(t, embedded.Listen("127.0.0.1:0"))
	c := newClient(t, node.Conn(), cluster.Config{AckWait: ackWait, MaxDeliver: 2})

	r := killsWorker.Schedule(c, 0)
	for i := 0; !r.Ready(); i++ {
		require.Less(t, i, 5, "workers lost to the poison call; want it dead-lettered after 2")
		p := startWorkerProc(t, node.URL(), "w", ackWait)
		select {
		case <-p.done:
			p.done <- nil
		case <-r.Done():
		}
	}
	_, err := r.Value()
	var dl *cluster.DeadLetterError
	require.ErrorAs(t, err, &dl)
	require.ErrorIs(t, err, cluster.ErrTooManyDeliveries)
	require.Equal(t, 3, dl.Deliveries, "deliveries when it was dead-lettered")
	require.Contains(t, err.Error(), "dead-letter stream")
	require.Equal(t, uint64(1), streamMsgs(t, node.Conn(), "PROCRASTINATE_DEAD"), "dead letters")
	require.Eventually(t, func() bool { return streamMsgs(t, node.Conn(), "PROCRASTINATE_CALLS") == 0 }, 10*time.Second, time.Millisecond,
		"the dead-lettered call leaves the calls stream")
}

// A task that a worker does not define goes back for another worker; when
// none defines it, it goes to the dead letters.
func TestUnknownTask(t *testing.T) {
	leakcheck.Check(t)
	const ackWait = 2 * time.Second
	node := startNode(t, embedded.Listen("127.0.0.1:0"))
	c := newClient(t, node.Conn(), cluster.Config{AckWait: ackWait, MaxDeliver: 3})

	// Two workers of the old program, which does not define the task.
	startWorkerProc(t, node.URL(), "old-1", ackWait)
	startWorkerProc(t, node.URL(), "old-2", ackWait)
	_, err := clientOnly.Schedule(c, 1).Value()
	var dl *cluster.DeadLetterError
	require.ErrorAs(t, err, &dl)
	require.ErrorIs(t, err, cluster.ErrUnknownTask)
	require.Equal(t, 3, dl.Deliveries)
	require.Contains(t, err.Error(), clientOnly.Name())

	// A worker of the new program takes what an old one hands back.
	patient := newClient(t, node.Conn(), cluster.Config{AckWait: ackWait, MaxDeliver: 20})
	before := consumerInfo(t, node.Conn()).Delivered.Consumer
	r := clientOnly.Schedule(patient, 1)
	require.Eventually(t, func() bool { return consumerInfo(t, node.Conn()).Delivered.Consumer > before }, 10*time.Second, time.Millisecond,
		"an old worker was offered the call")
	startWorker(t, node.Conn(), 1, cluster.WorkerName("new"))
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, 2, v)
}

// A worker that shuts down hands its running calls back; another worker
// runs them, and their futures get the answer, not an error.
func TestShutdownHandsCallsBack(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	g := newGate(t)

	w := startWorker(t, node.Conn(), 2, cluster.WorkerName("leaving"))
	r1, r2 := hold.Schedule(c, g.arg()), hold.Schedule(c, g.arg())
	g.waitStarted(t, 2)
	w.stop(t)
	g.waitStopped(t, 2)
	require.False(t, r1.Ready() || r2.Ready(), "a future resolved when its worker shut down")

	startWorker(t, node.Conn(), 2, cluster.WorkerName("staying"))
	g.waitStarted(t, 2)
	g.letGo(t, 2)
	for _, r := range []*result.Result[string]{r1, r2} {
		_, err := r.Value()
		require.NoError(t, err)
	}
}

// Cancelling a call's context stops it on its worker with the worker's
// termination sequence; the future gets the worker's CancelError.
func TestCancelStopsRemoteCall(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	g := newGate(t)
	startWorker(t, node.Conn(), 1, cluster.WorkerName("w1"))

	ctx, cancel := context.WithCancel(context.Background())
	r := hold.Schedule(c, g.arg(), task.WithContext(ctx))
	g.waitStarted(t, 1)
	cancel()
	g.waitStopped(t, 1)
	_, err := r.Value()
	require.ErrorIs(t, err, context.Canceled)
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Started, "CancelError.Started of a call that ran: %v", ce)
	var we *cluster.WorkerError
	require.ErrorAs(t, err, &we, "the worker that stopped it")
	require.Equal(t, "w1", we.Worker)
}

// A queued call whose context ends leaves the stream: it never runs, and
// its future fails at once as never started.
func TestCancelQueuedCall(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{CancelWait: 200 * time.Millisecond})
	g := newGate(t)

	ctx, cancel := context.WithCancel(context.Background())
	r := hold.Schedule(c, g.arg(), task.WithContext(ctx))
	require.Eventually(t, func() bool { return streamMsgs(t, node.Conn(), "PROCRASTINATE_CALLS") == 1 }, 10*time.Second, time.Millisecond, "the call is stored")
	cancel()
	_, err := r.Value()
	require.ErrorIs(t, err, context.Canceled)
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce)
	require.False(t, ce.Started, "CancelError.Started of a call that never ran: %v", ce)
	require.Zero(t, streamMsgs(t, node.Conn(), "PROCRASTINATE_CALLS"), "calls left in the stream")

	startWorker(t, node.Conn(), 1)
	g.noneStarted(t, 300*time.Millisecond)
}

// A call whose deadline passed while it was queued never runs: the worker
// that takes it answers with a CancelError.
func TestExpiredQueuedCallNeverRuns(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	// The client's own backstop comes long after the deadline, so that
	// the worker is the one that finds the deadline passed.
	c := newClient(t, node.Conn(), cluster.Config{CancelWait: time.Minute})
	g := newGate(t)

	const timeout = 200 * time.Millisecond
	deadline := time.Now().Add(timeout)
	r := hold.Schedule(c, g.arg(), task.WithTimeout(timeout))
	<-time.After(time.Until(deadline))
	startWorker(t, node.Conn(), 1, cluster.WorkerName("late"))
	_, err := r.Value()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ce *result.CancelError
	require.ErrorAs(t, err, &ce)
	require.False(t, ce.Started, "CancelError.Started: %v", ce)
	var we *cluster.WorkerError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "late", we.Worker)
	g.noneStarted(t, 100*time.Millisecond)
}

// A redelivery after a result was stored runs nothing and resolves
// nothing twice: the worker finds the stored result and acks the call.
func TestRedeliveryAfterStoredResult(t *testing.T) {
	leakcheck.Check(t)
	const ackWait = 300 * time.Millisecond
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{AckWait: ackWait})
	g := newGate(t)
	r := hold.Schedule(c, g.arg())

	// A worker that stored the result and was lost before its ack.
	js, err := jetstream.New(node.Conn())
	require.NoError(t, err)
	cons, err := js.Consumer(context.Background(), "PROCRASTINATE_CALLS", "workers")
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	require.NoError(t, err)
	answer, err := task.JSON.Marshal("stored first")
	require.NoError(t, err)
	id := m.Headers().Get("Procrastinate-Id")
	_, err = js.PublishMsg(context.Background(), &nats.Msg{
		Subject: "procrastinate.results.c." + id,
		Header:  nats.Header{"Procrastinate-Status": {"ok"}, "Procrastinate-Worker": {"lost"}, "Procrastinate-Id": {id}},
		Data:    answer,
	})
	require.NoError(t, err)
	v, err := r.Value()
	require.NoError(t, err)
	require.Equal(t, "stored first", v)

	startWorker(t, node.Conn(), 1)
	require.Eventually(t, func() bool { return consumerInfo(t, node.Conn()).NumAckPending == 0 }, 20*time.Second, time.Millisecond,
		"the redelivered call is acked")
	g.noneStarted(t, 100*time.Millisecond)
	require.Equal(t, uint64(1), streamMsgs(t, node.Conn(), "PROCRASTINATE_RESULTS"), "results stored")
	require.Equal(t, uint64(2), consumerInfo(t, node.Conn()).Delivered.Consumer, "deliveries of the call")
}

// A caller that restarted fetches a result by the key it chose; a second
// call with the same key gets the stored result without running; a result
// expires after Config.ResultTTL.
func TestFetchByKey(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	cfg := cluster.Config{ResultTTL: 2 * time.Second}
	first := newClient(t, node.Conn(), cfg)
	startWorker(t, node.Conn(), 1)

	v, err := square.Schedule(first.Key("invoice-42"), 7).Value()
	require.NoError(t, err)
	require.Equal(t, 49, v)
	require.NoError(t, first.Close())

	again := newClient(t, node.Conn(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err = cluster.Fetch(ctx, again, square, "invoice-42")
	require.NoError(t, err)
	require.Equal(t, 49, v, "the result fetched by its key")

	g := newGate(t)
	s, err := hold.Schedule(again.Key("invoice-42"), g.arg()).Value()
	require.Error(t, err, "a call whose key holds a square's result, decoded as hold's; got %q", s)
	g.noneStarted(t, 100*time.Millisecond)

	_, err = fails.Schedule(again.Key("failed"), "no luck").Value()
	var te *result.TaskError
	require.ErrorAs(t, err, &te)
	_, err = cluster.Fetch(ctx, again, fails, "failed")
	require.ErrorAs(t, err, &te, "a failed call's key gives its error")

	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	_, err = cluster.Fetch(short, again, square, "never-used")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = square.Schedule(again.Key("a key with spaces"), 1).Value()
	require.ErrorContains(t, err, "key")

	// Expiry: the stream drops results older than ResultTTL.
	require.Eventually(t, func() bool { return streamMsgs(t, node.Conn(), "PROCRASTINATE_RESULTS") == 0 }, 20*time.Second, 10*time.Millisecond,
		"results expire after ResultTTL")
}

// Calls queued when the server stops are there when it starts again on the
// same store, and the client that scheduled them gets their answers.
func TestServerRestartKeepsQueuedCalls(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	node, err := embedded.Start(context.Background(), dir, embedded.Listen("127.0.0.1:0"))
	require.NoError(t, err)
	url := node.URL()
	nc := connect(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	c := newClient(t, nc, cluster.Config{})

	const n = 20
	var rs []*result.Result[int]
	for i := range n {
		rs = append(rs, square.Schedule(c, i))
	}
	require.Eventually(t, func() bool { return streamMsgs(t, node.Conn(), "PROCRASTINATE_CALLS") == n }, 10*time.Second, time.Millisecond, "the calls are stored")
	node.Shutdown()

	node, err = embedded.Start(context.Background(), dir, embedded.Listen(url[len("nats://"):]))
	require.NoError(t, err)
	t.Cleanup(node.Shutdown)
	startWorker(t, node.Conn(), 2)
	for i, r := range rs {
		v, err := r.Value()
		require.NoError(t, err)
		require.Equal(t, i*i, v)
	}
}

// A worker whose dispatcher is closed under it hands back the calls whose
// children Close killed, and Serve returns an error that says so.
func TestDispatcherClosedUnderWorker(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	g := newGate(t)

	w := startWorker(t, node.Conn(), 1, cluster.WorkerName("closing"))
	r := hold.Schedule(c, holdArg{Dir: g.dir, Stubborn: true})
	g.waitStarted(t, 1)
	require.NoError(t, w.d.Close())
	select {
	case err := <-w.done:
		require.ErrorContains(t, err, "dispatcher was shut down or closed")
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return within 30s of its dispatcher's Close")
	}
	w.cancel()
	w.cancel = nil
	require.False(t, r.Ready(), "the call's future resolved when its worker's dispatcher closed")

	startWorker(t, node.Conn(), 1, cluster.WorkerName("other"))
	require.NoError(t, g.started.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err := g.started.Read(make([]byte, 1))
	require.NoError(t, err, "waiting for the call to start again; its future: ready %v, %v", r.Ready(), r.Err())
	g.letGo(t, 1)
	_, err = r.Value()
	require.NoError(t, err)
}

// With RunToEnd, a call that its caller cannot cancel runs to its end: a
// worker that shuts down waits for it and answers it instead of handing
// it back.
func TestRunToEndWaitsAtShutdown(t *testing.T) {
	leakcheck.Check(t)
	node := startNode(t)
	c := newClient(t, node.Conn(), cluster.Config{})
	g := newGate(t)

	w := startWorker(t, node.Conn(), 1, cluster.WorkerName("patient"), cluster.RunToEnd())
	r := hold.Schedule(c, g.arg())
	g.waitStarted(t, 1)
	w.cancel()
	w.cancel = nil
	g.noneStopped(t, 300*time.Millisecond)
	g.letGo(t, 1)
	select {
	case err := <-w.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return within 30s of its call's end")
	}
	require.NoError(t, w.d.Shutdown(context.Background()))
	_, err := r.Value()
	require.NoError(t, err, "the call answered by the worker that shut down")

	// A call with a context can still be cancelled.
	startWorker(t, node.Conn(), 1, cluster.RunToEnd())
	ctx, cancel := context.WithCancel(context.Background())
	r = hold.Schedule(c, g.arg(), task.WithContext(ctx))
	g.waitStarted(t, 1)
	cancel()
	g.waitStopped(t, 1)
	_, err = r.Value()
	require.ErrorIs(t, err, context.Canceled)
}
