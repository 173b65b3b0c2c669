package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// The environment of a worker process: a re-execution of this test binary
// that serves the cluster at the URL, under the name, until SIGTERM.
const (
	envWorkerURL  = "CLUSTER_TEST_WORKER_URL"
	envWorkerName = "CLUSTER_TEST_WORKER_NAME"
	envWorkerWait = "CLUSTER_TEST_WORKER_ACKWAIT"
)

// TestMain is also the entry of task children (procrastinate.Main runs
// their task and exits) and of worker processes.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	if url := os.Getenv(envWorkerURL); url != "" {
		os.Exit(workerMain(url, os.Getenv(envWorkerName)))
	}
	goleak.VerifyTestMain(m)
}

// workerMain serves the cluster at url with one slot until SIGTERM.
func workerMain(url, name string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	defer nc.Close()
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	defer d.Shutdown(context.Background())
	ackWait, _ := time.ParseDuration(os.Getenv(envWorkerWait))
	if err := cluster.Serve(ctx, nc, d, cluster.Slots(1), cluster.WorkerName(name),
		cluster.WithConfig(cluster.Config{AckWait: ackWait})); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

// The tasks of the tests, defined at package level so that the test
// process, the workers and every task child define the same names.
var (
	square = task.Define("cluster_test.square", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	})
	fails = task.Define("cluster_test.fails", func(ctx context.Context, msg string) (int, error) {
		return 0, errors.New(msg)
	})
	panics = task.Define("cluster_test.panics", func(ctx context.Context, msg string) (int, error) {
		panic(msg)
	})
	exits = task.Define("cluster_test.exits", func(ctx context.Context, code int) (int, error) {
		os.Exit(code)
		return 0, nil
	})
	// hold says that it started at its gate, then waits for a token from
	// the gate's release FIFO, or for its context to end. It answers with
	// its pid and the name of the worker given in the argument.
	hold = task.Define("cluster_test.hold", func(ctx context.Context, a holdArg) (string, error) {
		if err := passGate(ctx, a); err != nil {
			return "", err
		}
		return strconv.Itoa(os.Getpid()), nil
	})
	// holdWho waits at the gate like hold, and answers with the name of
	// the worker process whose child ran it.
	holdWho = task.Define("cluster_test.hold-who", func(ctx context.Context, a holdArg) (string, error) {
		if err := passGate(ctx, a); err != nil {
			return "", err
		}
		return os.Getenv(envWorkerName), nil
	})
	// bigAnswer answers with n bytes.
	bigAnswer = task.Define("cluster_test.big-answer", func(ctx context.Context, n int) ([]byte, error) {
		return make([]byte, n), nil
	})
	echo = task.Define("cluster_test.echo", func(ctx context.Context, b []byte) ([]byte, error) {
		return b, nil
	})
)

// holdArg is the argument of hold: the gate's directory.
type holdArg struct {
	Dir string
	// Stubborn holds on when the task's context ends: only the release,
	// or SIGKILL, ends it.
	Stubborn bool
}

// gate lets a test see a task start (a byte on the "started" FIFO), let
// it go on (a byte on the "release" FIFO), and see it stopped (a byte on
// the "stopped" FIFO when its context ends).
type gate struct {
	dir     string
	started *os.File
	release *os.File
	stopped *os.File
}

func newGate(t *testing.T) *gate {
	t.Helper()
	g := &gate{dir: t.TempDir()}
	for _, f := range []struct {
		name string
		file **os.File
	}{{"started", &g.started}, {"release", &g.release}, {"stopped", &g.stopped}} {
		path := filepath.Join(g.dir, f.name)
		require.NoError(t, syscall.Mkfifo(path, 0o600))
		var err error
		*f.file, err = os.OpenFile(path, os.O_RDWR, 0)
		require.NoError(t, err)
	}
	t.Cleanup(g.close)
	return g
}

func (g *gate) arg() holdArg { return holdArg{Dir: g.dir} }

func (g *gate) close() {
	g.started.Close()
	g.release.Close()
	g.stopped.Close()
}

// waitStarted waits until n more tasks have started at the gate.
func (g *gate) waitStarted(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, g.started.SetReadDeadline(time.Now().Add(60*time.Second)))
	_, err := io.ReadFull(g.started, make([]byte, n))
	require.NoError(t, err, "waiting for %d tasks to start at the gate", n)
}

// noneStarted checks that no task starts at the gate within d.
func (g *gate) noneStarted(t *testing.T, d time.Duration) {
	t.Helper()
	require.NoError(t, g.started.SetReadDeadline(time.Now().Add(d)))
	n, err := g.started.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a task started at the gate (%d bytes); want none within %v", n, d)
}

// noneStopped checks that no task at the gate sees its context end within d.
func (g *gate) noneStopped(t *testing.T, d time.Duration) {
	t.Helper()
	require.NoError(t, g.stopped.SetReadDeadline(time.Now().Add(d)))
	n, err := g.stopped.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a task at the gate saw its context end (%d bytes); want none within %v", n, d)
}

// waitStopped waits until n tasks at the gate have seen their context end.
func (g *gate) waitStopped(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, g.stopped.SetReadDeadline(time.Now().Add(60*time.Second)))
	_, err := io.ReadFull(g.stopped, make([]byte, n))
	require.NoError(t, err, "waiting for %d tasks at the gate to see their context end", n)
}

// letGo lets n tasks waiting at the gate go on.
func (g *gate) letGo(t *testing.T, n int) {
	t.Helper()
	_, err := g.release.Write(make([]byte, n))
	require.NoError(t, err)
}

// passGate is hold's side of the gate.
func passGate(ctx context.Context, a holdArg) error {
	started, err := os.OpenFile(filepath.Join(a.Dir, "started"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	_, err = started.Write([]byte{'s'})
	started.Close()
	if err != nil {
		return err
	}
	release, err := os.OpenFile(filepath.Join(a.Dir, "release"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer release.Close()
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(release, make([]byte, 1))
		got <- err
	}()
	if a.Stubborn {
		return <-got
	}
	select {
	case err := <-got:
		return err
	case <-ctx.Done():
		if stopped, err := os.OpenFile(filepath.Join(a.Dir, "stopped"), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_, _ = stopped.Write([]byte{'s'})
			stopped.Close()
		}
		return ctx.Err()
	}
}

// startNode starts an embedded node with its store in a temporary
// directory, shut down when the test ends.
func startNode(t *testing.T, opts ...embedded.Option) *embedded.Node {
	t.Helper()
	node, err := embedded.Start(context.Background(), t.TempDir(), opts...)
	require.NoError(t, err)
	t.Cleanup(node.Shutdown)
	return node
}

// newClient makes a Client over nc, closed when the test ends.
func newClient(t *testing.T, nc *nats.Conn, cfg cluster.Config) *cluster.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.New(ctx, nc, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// inWorker is a worker in the test process: a dispatcher and Serve.
type inWorker struct {
	d      *dispatcher.Dispatcher
	cancel context.CancelFunc
	done   chan error
}

// startWorker serves nc with a dispatcher of its own (Throttled(slots));
// it is stopped when the test ends, or by stop.
func startWorker(t *testing.T, nc *nats.Conn, slots int, opts ...cluster.ServeOption) *inWorker {
	t.Helper()
	d, err := dispatcher.Start(strategy.Throttled(slots), dispatcher.WithGracePeriod(2*time.Second))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w := &inWorker{d: d, cancel: cancel, done: make(chan error, 1)}
	opts = append([]cluster.ServeOption{cluster.Slots(slots)}, opts...)
	go func() { w.done <- cluster.Serve(ctx, nc, d, opts...) }()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop ends Serve, waits for it, and shuts the dispatcher down. Calling it
// again does nothing.
func (w *inWorker) stop(t *testing.T) {
	t.Helper()
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	select {
	case err := <-w.done:
		require.NoError(t, err, "Serve's error")
	case <-time.After(60 * time.Second):
		t.Fatal("Serve did not return within 60s of its context's end")
	}
	require.NoError(t, w.d.Shutdown(context.Background()))
}

// workerProc is a worker in a process of its own.
type workerProc struct {
	cmd  *exec.Cmd
	done chan error
}

// startWorkerProc starts a worker process that serves url under name.
func startWorkerProc(t *testing.T, url, name string, ackWait time.Duration) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorkerURL+"="+url, envWorkerName+"="+name, envWorkerWait+"="+ackWait.String())
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	p := &workerProc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	})
	return p
}

// kill SIGKILLs the worker process and waits for it.
func (p *workerProc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
	p.done <- nil // for the cleanup
}

// proxy forwards TCP connections to a server; freeze stops the traffic
// both ways without closing anything, as a network partition does.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	frozen bool
	thawed *sync.Cond
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: strings.TrimPrefix(target, "nats://")}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies from src to dst, holding each chunk while frozen.
func (p *proxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen {
				p.thawed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

func (p *proxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.thawed.Broadcast()
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.thaw()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
