package result_test

import (
	"context"
	"fmt"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// steps reports steps 1 to n of n, a moment apart.
var steps = task.Define("example.com/result.steps", func(ctx context.Context, n int64) (int64, error) {
	for i := int64(1); i <= n; i++ {
		if err := task.Progress(ctx, i, n); err != nil {
			return 0, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, nil
})

func ExampleResult_Progress() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := steps.Schedule(d, 3)
	_, ok := r.Progress() // never waits
	fmt.Println("reported yet:", ok)
	_, _ = r.Value()
	p, ok := r.Progress()
	fmt.Printf("%d/%d, try %d, %v\n", p.Done, p.Total, p.Attempt, ok)
	// Output:
	// reported yet: false
	// 3/3, try 1, true
}

func ExampleResult_ProgressChanged() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := steps.Schedule(d, 3)
	var last int64
	for !r.Ready() {
		changed := r.ProgressChanged() // closed at the next report, or when r resolves
		if p, ok := r.Progress(); ok {
			last = p.Done
		}
		<-changed
	}
	p, _ := r.Progress()
	fmt.Println(last <= p.Done, p.Done)
	// Output: true 3
}

func ExampleResult_OnProgress() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := steps.Schedule(d, 3)
	seen := make(chan result.Progress, 10)
	r.OnProgress(func(p result.Progress) { seen <- p }) // on a goroutine of its own, never the dispatcher's
	_, _ = r.Value()
	for p := range seen {
		if p.Done == p.Total { // the last report comes before the answer; its callback may come after
			fmt.Println("done", p.Done)
			break
		}
	}
	// Output: done 3
}

func ExampleResult_Usage() {
	d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithUsage())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := square.Schedule(d, 9)
	_, _ = r.Value()
	u, ok := r.Usage() // for a child started for this call: its whole life
	fmt.Println(ok, u.UserCPU+u.SystemCPU > 0, u.MaxRSS > 0)
	// Output: true true true
}

func ExampleResult_Log() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := square.Schedule(d, -1)
	_, err = r.Value()
	fmt.Println(err != nil, len(r.Log())) // square logs nothing
	// Output: true 0
}
