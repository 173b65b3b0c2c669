// Observe runs a batch of tasks and shows the ways to watch it: the
// dispatcher's Stats, read as often as you like without holding it up;
// its events, for what happens to each call and child; and /metrics, in
// the Prometheus text format, for a scraper.
//
// Some of the tasks fail, and one in ten crashes its child, so that there
// is something to see. While the batch runs, a line of Stats goes to
// stderr every half second; the events of note (a crash, a retry) as they
// come; the metrics at http://ADDR/metrics.
//
//	go run ./examples/observe -n 200 -addr localhost:9100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/metrics"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// work is the task: it takes a moment, then fails for every seventh n
// and crashes its child for every tenth.
var work = task.Define("github.com/procrastinate-go/procrastinate/examples/observe.work", func(ctx context.Context, n int) (int, error) {
	time.Sleep(time.Duration(n%5) * 10 * time.Millisecond)
	switch {
	case n%10 == 9:
		os.Exit(3)
	case n%7 == 6:
		return 0, errors.New("seven does not agree")
	}
	return n * n, nil
})

func main() {
	procrastinate.Main()
	n := flag.Int("n", 100, "how many tasks to run")
	addr := flag.String("addr", "localhost:9100", "where to serve /metrics")
	hold := flag.Bool("hold", false, "go on serving /metrics after the batch, until interrupted")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "metrics at http://%s/metrics\n", ln.Addr())
	after := func(*dispatcher.Dispatcher) {}
	if *hold {
		after = func(*dispatcher.Dispatcher) { select {} }
	}
	if err := run(os.Stderr, ln, *n, after); err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		os.Exit(1)
	}
}

// run serves /metrics on ln, runs n tasks and reports on w; after the
// batch, with /metrics still served, it calls after.
func run(w io.Writer, ln net.Listener, n int, after func(*dispatcher.Dispatcher)) error {
	w = &lockedWriter{w: w} // written by the events' goroutine and this one
	d, err := dispatcher.Start(strategy.Throttled(4, strategy.Reuse(20)))
	if err != nil {
		return err
	}
	defer d.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(d))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	// Events: read on a goroutine of our own; the dispatcher never waits
	// for it, and what does not fit in 256 is counted as lost.
	events, cancel := d.Subscribe(256)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for e := range events {
			if e.Dropped > 0 {
				fmt.Fprintf(w, "(%d events lost)\n", e.Dropped)
			}
			switch {
			case e.Kind == dispatcher.ChildExited && e.Exit == dispatcher.ExitCrashed:
				fmt.Fprintf(w, "child %d crashed running %s: %s\n", e.Pid, e.Task, e.Cause)
			case e.Kind == dispatcher.TaskRetried:
				fmt.Fprintf(w, "call %d retried (try %d) after %v\n", e.Call, e.Attempt, e.Delay)
			}
		}
	}()

	for i := range n {
		work.Schedule(d, i, task.WithRetries(1, 10*time.Millisecond))
	}
	ctx, stop := context.WithCancel(context.Background())
	joined := make(chan error, 1)
	go func() { joined <- d.Join(ctx) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case err = <-joined:
			waiting = false
		case <-tick.C:
			summary(w, d.Stats())
		}
	}
	stop()
	if err != nil {
		return err
	}
	s := d.Stats()
	summary(w, s)
	after(d)
	if err := d.Shutdown(context.Background()); err != nil {
		return err
	}
	cancel()
	<-watched
	return nil
}

// summary writes one line of s.
func summary(w io.Writer, s dispatcher.Stats) {
	fmt.Fprintf(w, "%d/%d done: %d succeeded, %d failed, %d died; %d running, %d queued; %d children alive, %d started\n",
		s.Done(), s.Scheduled,
		s.Completed[dispatcher.OutcomeSucceeded], s.Completed[dispatcher.OutcomeFailed], s.Completed[dispatcher.OutcomeDied],
		s.Running, s.Queued, s.Children, s.ChildrenStarted)
}

// lockedWriter is an io.Writer that two goroutines may share.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
