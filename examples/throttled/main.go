// Throttled runs a dozen tasks that take a moment under
// strategy.Throttled(5): never more than five children alive at once.
// Each child counts the children running as it starts, from marker files
// that the children themselves leave in a shared directory, and prints
// what it saw; the parent prints the most it was told.
//
//	go run ./examples/throttled
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func main() {
	procrastinate.Main() // first thing: a child runs its task here and exits

	peak, err := run(12, 5, 500*time.Millisecond)
	if err != nil {
		fmt.Fprintln(os.Stderr, "throttled:", err)
		os.Exit(1)
	}
	fmt.Printf("12 tasks done; at most %d ran at once (the limit is 5)\n", peak)
}

// Job is the argument of a task: where the children leave their markers,
// and how long the task takes.
type Job struct {
	Dir   string
	Pause time.Duration
}

// work runs in a child. It leaves a marker file while it runs, counts the
// markers (its own included) as it starts, and answers with that count.
var work = task.Define("github.com/procrastinate-go/procrastinate/examples/throttled.work", func(ctx context.Context, j Job) (int, error) {
	pid := os.Getpid()
	marker := filepath.Join(j.Dir, strconv.Itoa(pid))
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return 0, err
	}
	defer os.Remove(marker)
	entries, err := os.ReadDir(j.Dir)
	if err != nil {
		return 0, err
	}
	running := len(entries)
	fmt.Printf("pid %d starting, %d running\n", pid, running)
	select {
	case <-time.After(j.Pause):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	fmt.Printf("pid %d done\n", pid)
	return running, nil
})

// run schedules n tasks under Throttled(limit), waits for them all and
// returns the most children any of them saw running at once.
func run(n, limit int, pause time.Duration) (int, error) {
	dir, err := os.MkdirTemp("", "throttled-example-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)

	d, err := dispatcher.Start(strategy.Throttled(limit))
	if err != nil {
		return 0, err
	}
	// On the way out of an error (or a panic), Close: it drops what is
	// still queued and stops the children at once. A deferred Shutdown
	// would wait for every queued task to run first.
	defer d.Close()

	results := make([]*result.Result[int], n)
	for i := range results {
		results[i] = work.Schedule(d, Job{Dir: dir, Pause: pause})
	}
	peak := 0
	for i, r := range results {
		running, err := r.Value()
		if err != nil {
			return 0, fmt.Errorf("task %d: %w", i, err)
		}
		peak = max(peak, running)
	}
	// All answered: Shutdown only waits for the children to exit, within
	// a deadline. (The deferred Close then does nothing.)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return peak, d.Shutdown(ctx)
}
