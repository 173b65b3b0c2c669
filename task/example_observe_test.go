package task_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// countTo reports its progress for every unit: the child coalesces the
// reports into a few a second, and always sends the last.
var countTo = task.Define("example.com/calc.count-to", func(ctx context.Context, n int64) (int64, error) {
	for i := int64(1); i <= n; i++ {
		if err := task.Progress(ctx, i, n); err != nil {
			return 0, err
		}
	}
	return n, nil
})

func ExampleProgress() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := countTo.Schedule(d, 100000)
	_, _ = r.Value()
	p, ok := r.Progress() // the last report before the answer
	fmt.Println(p.Done, p.Total, p.Attempt, ok)
	// Output: 100000 100000 1 true
}

// greetLogged logs through task.Logger: the record reaches the dispatcher's
// logger, and the future keeps the last lines.
var greetLogged = task.Define("example.com/calc.greet-loggedLogged", func(ctx context.Context, name string) (string, error) {
	task.Logger(ctx).Info("greeting", "name", name)
	return "hello " + name, nil
})

func ExampleLogger() {
	d, err := dispatcher.Start(strategy.Throttled(1)) // dispatcher.WithLogger(l) sends the records to l
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := greetLogged.Schedule(d, "Ada")
	fmt.Println(r.Value())
	fmt.Println(strings.Join(r.Log(), "\n"))
	// Output:
	// hello Ada <nil>
	// INFO greeting name="Ada"
}

// progressive is a Scheduler that reports progress and what the call
// cost before it answers, as a scheduler of calls elsewhere does with
// what its remote side reports.
type progressive struct{}

func (progressive) Submit(c *task.Call) {
	c.ReportProgress(result.Progress{Done: 1, Total: 1, Attempt: 1})
	c.ReportEnd(&result.Usage{UserCPU: 3_000_000}, []string{"INFO done"})
	answer, _ := task.JSON.Marshal(4)
	c.Resolve(answer)
}

func ExampleCall_ReportProgress() {
	r := square.Schedule(progressive{}, 2)
	fmt.Println(r.Value())
	p, _ := r.Progress()
	fmt.Println(p.Done, "of", p.Total)
	// Output:
	// 4 <nil>
	// 1 of 1
}

func ExampleCall_ReportEnd() {
	r := square.Schedule(progressive{}, 2)
	_, _ = r.Value()
	u, ok := r.Usage()
	fmt.Println(u.UserCPU, ok, r.Log())
	// Output: 3ms true [INFO done]
}
