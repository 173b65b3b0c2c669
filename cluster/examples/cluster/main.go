// Command cluster shows the same tasks running on several worker
// processes through NATS JetStream, and a worker lost in the middle of a
// call.
//
// Run from the cluster module's directory:
//
//	go run ./examples/cluster
//
// It starts an embedded NATS server (listening on 127.0.0.1 only), two
// worker processes (this program again, with -worker) and a client. The
// client schedules a slow call and a few quick ones; once the slow call
// runs, the program SIGKILLs the worker that runs it, and the call is
// given to the other worker after the ack wait and finishes there.
//
// Given a URL (-url nats://host:4222, or PROCRASTINATE_NATS_URL), the same
// program starts no server and joins that cluster: its workers and its
// client connect there. With -worker it only serves, until SIGTERM or
// SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/cluster"
	"github.com/procrastinate-go/procrastinate/cluster/embedded"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// slowArg is the argument of slow: where to say that it started, and for
// how long to work.
type slowArg struct {
	Dir   string
	Steps int
}

// slow works for Steps tenths of a second. It leaves a file named for
// its worker's pid in Dir as it starts, and answers with that pid.
var slow = task.Define("example.slow", func(ctx context.Context, a slowArg) (int, error) {
	worker := os.Getppid() // the task runs in a child of the worker's dispatcher
	if err := os.WriteFile(filepath.Join(a.Dir, strconv.Itoa(worker)), nil, 0o644); err != nil {
		return 0, err
	}
	for range a.Steps {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return worker, nil
})

var square = task.Define("example.square", func(ctx context.Context, n int) (int, error) {
	return n * n, nil
})

func main() {
	procrastinate.Main()

	url := flag.String("url", os.Getenv("PROCRASTINATE_NATS_URL"), "the NATS cluster to join; empty: start an embedded server")
	worker := flag.Bool("worker", false, "only serve calls, until SIGTERM or SIGINT")
	name := flag.String("name", "", "the worker's name")
	flag.Parse()

	if *worker {
		if err := serve(*url, *name); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*url); err != nil {
		log.Fatal(err)
	}
}

// serve is a worker: a local dispatcher that runs the cluster's calls.
func serve(url, name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	d, err := dispatcher.Start(strategy.Throttled(2, strategy.Reuse(strategy.Unlimited)))
	if err != nil {
		return err
	}
	defer d.Shutdown(context.Background())
	return cluster.Serve(ctx, nc, d, cluster.Slots(2), cluster.WorkerName(name),
		cluster.WithConfig(cluster.Config{AckWait: time.Second}))
}

// run starts the server (unless given a URL), two workers and a client.
func run(url string) error {
	ctx := context.Background()
	var nc *nats.Conn
	if url == "" {
		dir, err := os.MkdirTemp("", "procrastinate-cluster-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		node, err := embedded.Start(ctx, dir, embedded.Listen("127.0.0.1:0"))
		if err != nil {
			return err
		}
		defer node.Shutdown()
		url, nc = node.URL(), node.Conn()
		fmt.Println("embedded NATS server at", url)
	} else {
		var err error
		if nc, err = nats.Connect(url); err != nil {
			return err
		}
		defer nc.Close()
		fmt.Println("joining the NATS cluster at", url)
	}

	c, err := cluster.New(ctx, nc, cluster.Config{AckWait: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()

	workers := map[int]*exec.Cmd{}
	for _, name := range []string{"w1", "w2"} {
		cmd, err := startWorker(url, name)
		if err != nil {
			return err
		}
		workers[cmd.Process.Pid] = cmd
		fmt.Printf("worker %s started, pid %d\n", name, cmd.Process.Pid)
	}
	defer func() {
		for _, cmd := range workers {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}()

	marks, err := os.MkdirTemp("", "procrastinate-marks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(marks)
	r := slow.Schedule(c, slowArg{Dir: marks, Steps: 20})
	for i := range 5 {
		v, err := square.Schedule(c, i).Value()
		if err != nil {
			return err
		}
		fmt.Printf("square(%d) = %d\n", i, v)
	}

	victim, err := waitMark(marks, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("the slow call runs on worker pid %d; killing it with SIGKILL\n", victim)
	if cmd := workers[victim]; cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(workers, victim)
	}
	v, err := r.Value()
	if err != nil {
		return err
	}
	fmt.Printf("the slow call finished on worker pid %d, the other one\n", v)
	return nil
}

// startWorker starts this program again as a worker.
func startWorker(url, name string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-worker", "-url", url, "-name", name)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd, cmd.Start()
}

// waitMark waits for the slow call's mark and returns the pid it names.
func waitMark(dir string, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return 0, err
		}
		if len(entries) > 0 {
			return strconv.Atoi(entries[0].Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("the slow call did not start within %v", within)
}
