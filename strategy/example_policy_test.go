package strategy_test

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// pid answers with the pid of the child that ran it.
var pid = task.Define("example.com/strategy.pid", func(ctx context.Context, _ int) (int, error) {
	return os.Getpid(), nil
})

// children runs n tasks one after another on d and returns how many
// children ran them.
func children(d *dispatcher.Dispatcher, n int) int {
	seen := map[int]bool{}
	for i := range n {
		p, err := pid.Schedule(d, i).Value()
		if err != nil {
			fmt.Println(err)
			return 0
		}
		seen[p] = true
	}
	return len(seen)
}

func ExampleReuse() {
	for _, s := range []strategy.Strategy{
		strategy.Throttled(1),                                     // a fresh child per task
		strategy.Throttled(1, strategy.Reuse(2)),                  // up to two tasks a child
		strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)), // one child for all
	} {
		d, err := dispatcher.Start(s)
		if err != nil {
			fmt.Println(err)
			return
		}
		n := 6 / children(d, 6)
		fmt.Printf("%v: %d task%s a child\n", s, n, map[bool]string{true: "s"}[n > 1])
		d.Close()
	}
	// Output:
	// Throttled(1): 1 task a child
	// Throttled(1) with reuse 2: 2 tasks a child
	// Throttled(1) with reuse: 6 tasks a child
}

func ExampleSpares() {
	// Two children wait for work before any comes: a task given to one
	// starts with a pipe write, not a process start.
	s := strategy.Throttled(4, strategy.Spares(2))
	fmt.Println(s, s.Policy().Spares)
	// Output: Throttled(4) with 2 spares 2
}

func ExamplePolicy() {
	s := strategy.Default(
		strategy.Reuse(1000),       // a child serves up to 1000 tasks,
		strategy.MaxAge(time.Hour), // and retires after an hour,
		strategy.MaxRSS(512<<20),   // or once its peak memory passed 512 MiB,
		strategy.Spread(0.1),       // each limit varied by ±10% per child;
		strategy.Pipeline(8),       // up to 8 tasks handed to one child at once
		strategy.Spares(1),         // and one child kept waiting for work.
	)
	fmt.Printf("%+v\n", s.Policy())
	// The zero Policy is a fresh process per task, no spares.
	fmt.Printf("%+v\n", strategy.Policy{})
	// Output:
	// {Reuse:1000 MaxAge:1h0m0s MaxRSS:536870912 Spread:0.1 Spares:1 Pipeline:8}
	// {Reuse:0 MaxAge:0s MaxRSS:0 Spread:0 Spares:0 Pipeline:0}
}

func ExamplePolicy_Validate() {
	fmt.Println(strategy.Policy{Pipeline: 100}.Validate())
	// Output: strategy: Pipeline(100): the depth must be from 0 to 64
}

func ExampleDefault() {
	// Three children per CPU: for work that waits as much as it computes.
	s := strategy.Default()
	p := &pool{queued: 1000}
	s.Step(p)
	fmt.Println(p.children == 3*runtime())
	// Output: true
}

func ExampleDefaultWithFactor() {
	// One child per CPU: for pure CPU work.
	s := strategy.DefaultWithFactor(1)
	p := &pool{queued: 1000}
	s.Step(p)
	fmt.Println(p.children == runtime())
	// Output: true
}

// serve is a worker: it runs until its context ends.
var serve = task.DefineWorker("example.com/strategy.serve", func(ctx context.Context, name string) error {
	<-ctx.Done()
	return nil
})

func ExampleSpawnN() {
	d, err := dispatcher.Start(strategy.SpawnN(3, serve, "frontend",
		strategy.MaxRestarts(10, time.Minute),                  // give up past 10 restarts a minute
		strategy.Backoff(100*time.Millisecond, 10*time.Second), // pause a slot that keeps dying
		strategy.CallOptions(task.WithProcess(task.Process{Nice: 5}))))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Tasks are not for a server.
	_, err = pid.Schedule(d, 0).Value()
	fmt.Println(err)
	// Shutdown ends the workers' contexts; they return.
	fmt.Println(d.Shutdown(context.Background()))
	// Output:
	// dispatcher: its strategy runs no scheduled tasks (server mode); schedule them on a dispatcher of their own
	// <nil>
}

func ExampleMaxRestarts() {
	_, err := dispatcher.Start(strategy.SpawnN(1, serve, "x", strategy.MaxRestarts(-1, time.Minute)))
	fmt.Println(err)
	// Output: dispatcher: refusing the strategy: strategy: MaxRestarts(-1, 1m0s): the count must not be negative and the period must be positive
}

func ExampleCallOptions() {
	_, err := dispatcher.Start(strategy.SpawnN(1, serve, "x", strategy.CallOptions(task.WithRetries(3, time.Second))))
	fmt.Println(err)
	// Output: dispatcher: refusing the strategy: strategy: SpawnN("example.com/strategy.serve"): task.WithRetries does not apply to workers; the server restarts them (MaxRestarts, Backoff)
}

// runtime is the number of CPUs that Default counts.
func runtime() int { return goruntime.NumCPU() }
