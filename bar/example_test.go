package bar_test

import (
	"context"
	"os"
	"time"

	"github.com/procrastinate-go/procrastinate/bar"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var double = task.Define("bar_test.double", func(ctx context.Context, n int) (int, error) {
	return 2 * n, nil
})

// Follow a batch to its end. On a terminal (os.Stderr, say) the bar is
// redrawn in place; here, on a pipe, it writes one line at the end.
func ExampleBar_Follow() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		panic(err)
	}
	defer d.Shutdown(context.Background())
	for i := range 10 {
		double.Schedule(d, i)
	}

	// A clock that stands still, so that the rate and the time below do
	// not depend on the machine; a program leaves the option out.
	start := time.Now()
	b := bar.New(os.Stdout, bar.WithClock(func() time.Time { return start }))
	b.Follow(context.Background(), d)
	// Output:
	// 10/10 done (100%), 0.0/s, ETA ?, 0 running, 0 failed, 0:00 elapsed
}
