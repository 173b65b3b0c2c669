// Simple is the README program of the Ruby gem procrastinate, in Go: ten
// tasks, each in a child process of its own, that print their pid as they
// start and as they finish, and answer with it.
//
// A child's stdout is the parent's, so the children's lines and the
// parent's share the terminal. How many children run at once depends on
// the number of CPUs: the Default strategy allows three per CPU.
//
//	go run ./examples/simple
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func main() {
	// First thing: in a child, Main runs the task the child was started
	// for and exits; in the parent it returns at once.
	procrastinate.Main()

	s := strategy.Default()
	fmt.Printf("parent %d: 10 tasks, %v\n", os.Getpid(), s)
	pids, err := run(s, 10, time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "simple:", err)
		os.Exit(1)
	}
	for i, pid := range pids {
		fmt.Printf("task %d ran in pid %d\n", i, pid)
	}
}

// work is the task. It runs in a child: it says it is starting, takes a
// moment, says it is done and answers with its pid. It is defined at
// package level so that the parent and every child (a fresh start of this
// program) know it by its name.
var work = task.Define("github.com/procrastinate-go/procrastinate/examples/simple.work", func(ctx context.Context, pause time.Duration) (int, error) {
	pid := os.Getpid()
	fmt.Printf("pid %d starting\n", pid)
	select {
	case <-time.After(pause):
	case <-ctx.Done(): // the dispatcher is closing
		return 0, ctx.Err()
	}
	fmt.Printf("pid %d done\n", pid)
	return pid, nil
})

// run schedules n tasks on a dispatcher of its own, collects their
// answers in the order they were scheduled, and shuts the dispatcher down.
func run(s strategy.Strategy, n int, pause time.Duration) ([]int, error) {
	d, err := dispatcher.Start(s)
	if err != nil {
		return nil, err
	}
	// On the way out of an error (or a panic), Close: it drops what is
	// still queued and stops the children at once. A deferred Shutdown
	// would wait for every queued task to run first.
	defer d.Close()

	results := make([]*result.Result[int], n)
	for i := range results {
		results[i] = work.Schedule(d, pause) // never waits for a child
	}
	pids := make([]int, n)
	for i, r := range results {
		if pids[i], err = r.Value(); err != nil { // waits
			return nil, fmt.Errorf("task %d: %w", i, err)
		}
	}
	// All answered: Shutdown only waits for the children to exit, and
	// its deadline bounds even that. (The deferred Close then does
	// nothing.)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pids, d.Shutdown(ctx)
}
