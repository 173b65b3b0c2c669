package dispatcher_test

import (
	"context"
	"fmt"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
)

func ExampleDispatcher_Stats() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	for n := 1; n <= 5; n++ {
		cube.Schedule(d, n)
	}
	_ = d.Shutdown(context.Background())

	s := d.Stats() // never waits on the dispatcher; fine after it ended
	fmt.Println("done", s.Done(), "of", s.Scheduled)
	fmt.Println("succeeded", s.Completed[dispatcher.OutcomeSucceeded], "running", s.Running, "queued", s.Queued)
	fmt.Println("cube ran", s.Tasks[cube.Name()].RunTime.Count, "times")
	// Output:
	// done 5 of 5
	// succeeded 5 running 0 queued 0
	// cube ran 5 times
}

func ExampleDispatcher_Subscribe() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	events, cancel := d.Subscribe(100) // a reader that falls behind loses events, counted in Event.Dropped
	defer cancel()
	cube.Schedule(d, 3)
	_ = d.Shutdown(context.Background())

	for e := range events { // closed once the dispatcher has ended
		switch e.Kind {
		case dispatcher.TaskQueued, dispatcher.TaskStarted:
			fmt.Println(e.Kind, e.Task)
		case dispatcher.TaskDone:
			fmt.Println(e.Kind, e.Task, e.Outcome)
		}
	}
	// Output:
	// task-queued example.com/calc.cube
	// task-started example.com/calc.cube
	// task-done example.com/calc.cube succeeded
}

func ExampleOutcome() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	cube.Schedule(d, 2)
	badExit.Schedule(d, exitArg{Code: 3}) // its child exits without an answer
	_ = d.Shutdown(context.Background())

	s := d.Stats()
	for o, n := range s.Completed {
		if n > 0 {
			fmt.Println(dispatcher.Outcome(o), n)
		}
	}
	// Output:
	// succeeded 1
	// died 1
}

func ExampleExitReason() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	badExit.Schedule(d, exitArg{Code: 3})
	_ = d.Shutdown(context.Background())

	fmt.Println(dispatcher.ExitCrashed, d.Stats().ChildrenExited[dispatcher.ExitCrashed])
	// Output: crashed 1
}

func ExampleHistogram() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	for n := range 3 {
		cube.Schedule(d, n)
	}
	_ = d.Shutdown(context.Background())

	h := d.Stats().RunTime
	fmt.Println(h.Count, len(h.Bounds) == len(h.Counts), h.Counts[len(h.Counts)-1]) // cumulative: the last bound, an hour, holds them all
	// Output: 3 true 3
}

func ExampleWithUsage() {
	d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithUsage())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := cube.Schedule(d, 3)
	_, _ = r.Value()
	u, ok := r.Usage() // a child started for this call: its whole life
	fmt.Println(ok, u.UserCPU+u.SystemCPU > 0, u.MaxRSS > 0)
	// Output: true true true
}
