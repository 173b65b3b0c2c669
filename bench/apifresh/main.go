// Command apifresh measures what a small program of a user pays for a
// fresh process per task: n no-op tasks through the public API
// (task.Define, Def.Schedule, Result.Value) under strategy.Throttled(2),
// two children alive at a time, each serving one task. It is a program of
// its own, in a module of its own, so that a child's start is what a
// user's child's is: the Go runtime and the packages this program links,
// with nothing of a test binary's. bench/goreexec is its floor: the same
// number of processes with nothing of the library.
//
//	go build -o apifresh ./bench/apifresh && ./apifresh 1000
//
// It prints one line in the format of go test -bench: the wall time per
// task, tasks/s, and the CPU per task of this process and of its children.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/bench/internal/meter"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// noop answers with its argument.
var noop = task.Define("apifresh.noop", func(ctx context.Context, n int) (int, error) {
	return n, nil
})

func main() {
	procrastinate.Main()
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: apifresh tasks")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: apifresh tasks (a number of tasks, 1 or more)")
		os.Exit(2)
	}
	use, err := run(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apifresh:", err)
		os.Exit(1)
	}
	fmt.Print(use.Line("APIFresh", n))
}

// run schedules n no-op tasks at once on a new dispatcher, reads every
// value, and shuts the dispatcher down, so that every child is reaped
// and counted.
func run(n int) (meter.Use, error) {
	m := meter.Start()
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		return meter.Use{}, err
	}
	rs := make([]*result.Result[int], n)
	for i := range rs {
		rs[i] = noop.Schedule(d, i)
	}
	for i, r := range rs {
		if v, err := r.Value(); err != nil || v != i {
			_ = d.Close()
			return meter.Use{}, fmt.Errorf("task %d: Value() = %v, %v; want %d, nil", i, v, err, i)
		}
	}
	if err := d.Shutdown(context.Background()); err != nil {
		return meter.Use{}, err
	}
	return m.Stop(), nil
}
