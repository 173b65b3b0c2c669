// Server keeps n workers alive in child processes (strategy.SpawnN, the
// gem's server mode). Each worker prints its pid as it starts and sends a
// heartbeat every half second until it is told to stop.
//
//	go run ./examples/server        # three workers
//	go run ./examples/server -n 5
//
// Kill a worker (kill -9 <pid>) and a new one starts in its place. Stop the
// server with ^C, or SIGTERM or SIGQUIT to the parent: the workers see their
// context end and return, and the parent exits once they are all gone. A
// worker that crashes over and over makes the server give up (MaxRestarts);
// the parent then stops the rest and exits with status 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// Config is what every worker is started with.
type Config struct {
	Beat time.Duration // how often a worker sends a heartbeat
}

// worker runs in a child until its context ends: at Shutdown (a stop
// frame from the parent) or on SIGTERM. The heartbeats keep the activity
// check (task.WithActivityTimeout) from taking it for a hung worker.
var worker = task.DefineWorker("github.com/procrastinate-go/procrastinate/examples/server.worker", func(ctx context.Context, c Config) error {
	pid := os.Getpid()
	fmt.Printf("worker %d: started\n", pid)
	tick := time.NewTicker(c.Beat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("worker %d: stopping\n", pid)
			return nil
		case <-tick.C:
			// Real work goes here, a piece at a time.
			if err := task.Heartbeat(ctx); err != nil {
				return err
			}
		}
	}
})

func main() {
	procrastinate.Main() // first thing: a child runs its worker here and exits

	n := flag.Int("n", 3, "the number of workers to keep alive")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	// The signals that stop the server. Workers run in process groups of
	// their own, so a ^C at the terminal reaches the parent only, and the
	// parent stops them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	defer stop()

	logger := hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn, Output: os.Stderr})
	d, err := dispatcher.Start(
		strategy.SpawnN(n, worker, Config{Beat: 500 * time.Millisecond},
			strategy.CallOptions(task.WithActivityTimeout(5*time.Second)), // kill a worker silent for 5s
			strategy.MaxRestarts(10, time.Minute),                         // give up past 10 restarts a minute
			strategy.Backoff(100*time.Millisecond, 5*time.Second)),        // pause between restarts of a crashing slot
		dispatcher.WithGracePeriod(3*time.Second), // then SIGKILL a worker that does not stop
		dispatcher.WithLogger(logger),
	)
	if err != nil {
		return err
	}
	defer d.Close() // a panic on the way: stop the workers at once
	fmt.Printf("parent %d: keeping %d workers alive; kill one to see it replaced, ^C to stop\n", os.Getpid(), n)

	select {
	case <-ctx.Done():
		fmt.Printf("parent %d: %v; stopping the workers\n", os.Getpid(), context.Cause(ctx))
	case <-d.Done():
		// The server gave up (its workers kept dying), and the dispatcher
		// shut down on its own: its workers are stopped already.
		fmt.Printf("parent %d: the server gave up; its workers are stopped\n", os.Getpid())
		return d.Err()
	}
	stop() // from here on a second ^C ends the program at once

	// Shutdown lets the workers return through their context, waits the
	// grace period for those that do not, and kills what is left: in
	// server mode the grace period bounds it. (The deferred Close then
	// does nothing.)
	if err := d.Shutdown(context.Background()); err != nil {
		return err
	}
	fmt.Printf("parent %d: all workers stopped\n", os.Getpid())
	return nil
}
