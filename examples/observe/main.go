// Observe runs a batch of tasks and shows the ways to watch it: a
// progress bar on stderr, drawn from the dispatcher's Stats and the
// progress the tasks report; /metrics, in the Prometheus text format, for
// a scraper; and the dispatcher's events, for what happens to each call
// and child.
//
// Some of the tasks fail, and one in ten crashes its child, so that there
// is something to see. While the batch runs, the bar moves on stderr and
// the metrics are at http://ADDR/metrics; once it has ended, the crashes
// and retries that the events told of are listed. The program ends with
// the batch, unless -hold is given.
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
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/bar"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/metrics"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// work is the task: it takes n%5 steps of 20 ms, reporting each, then
// fails for every seventh n and crashes its child for every tenth.
var work = task.Define("github.com/procrastinate-go/procrastinate/examples/observe.work", func(ctx context.Context, n int) (int, error) {
	steps := int64(n%5 + 1)
	for i := range steps {
		time.Sleep(20 * time.Millisecond)
		if err := task.Progress(ctx, i+1, steps); err != nil {
			return 0, err
		}
	}
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
	addr := flag.String("addr", "localhost:0", "where to serve /metrics (port 0: any free port)")
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
		after = func(*dispatcher.Dispatcher) {
			fmt.Fprintln(os.Stderr, "the batch has ended; /metrics is served until you interrupt")
			select {}
		}
	}
	if err := run(os.Stderr, ln, *n, after); err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		os.Exit(1)
	}
}

// run serves /metrics on ln, runs n tasks with a bar on w, and lists on
// w what the events told; after the batch, with /metrics still served,
// it calls after.
func run(w io.Writer, ln net.Listener, n int, after func(*dispatcher.Dispatcher)) error {
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
	// for it, and what does not fit in 256 is counted as lost. What is of
	// note is kept for the end, so as not to break the bar's line.
	events, cancel := d.Subscribe(256)
	defer cancel()
	noted := make(chan []string, 1)
	go func() {
		var notes []string
		for e := range events {
			if e.Dropped > 0 {
				notes = append(notes, fmt.Sprintf("(%d events lost)", e.Dropped))
			}
			switch {
			case e.Kind == dispatcher.ChildExited && e.Exit == dispatcher.ExitCrashed:
				notes = append(notes, fmt.Sprintf("child %d crashed running %s: %s", e.Pid, e.Task, e.Cause))
			case e.Kind == dispatcher.TaskRetried:
				notes = append(notes, fmt.Sprintf("call %d retried (try %d) after %v", e.Call, e.Attempt, e.Delay))
			}
		}
		noted <- notes
	}()

	for i := range n {
		work.Schedule(d, i, task.WithRetries(1, 10*time.Millisecond))
	}
	// The bar follows the batch until every call has ended.
	bar.New(w).Follow(context.Background(), d)
	after(d)
	if err := d.Shutdown(context.Background()); err != nil {
		return err
	}
	cancel()
	for _, note := range <-noted {
		fmt.Fprintln(w, note)
	}
	s := d.Stats()
	_, err = fmt.Fprintf(w, "%d succeeded, %d failed, %d died; %d children started, %d crashed\n",
		s.Completed[dispatcher.OutcomeSucceeded], s.Completed[dispatcher.OutcomeFailed], s.Completed[dispatcher.OutcomeDied],
		s.ChildrenStarted, s.ChildrenExited[dispatcher.ExitCrashed])
	return err
}
