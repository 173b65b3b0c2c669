package procrastinate_test

import (
	"context"
	"fmt"
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// square is defined at package level, so that the program and each of its
// children (fresh starts of the same executable) know it by its name.
var square = task.Define("example.com/calc.square", func(ctx context.Context, n int) (int, error) {
	return n * n, nil
})

func Example() {
	// First thing in main, and in TestMain: in a child, Main runs the task
	// the child was started for and exits; here it returns at once.
	procrastinate.Main()

	d, err := dispatcher.Start(strategy.Throttled(4))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // on a panic or an early return: drop the queue, stop the children

	r := square.Schedule(d, 7) // returns at once; a child computes 7*7
	v, err := r.Value()        // waits for the child's answer
	fmt.Println(v, err)

	// The work is done: let the rest finish, within a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	// Output: 49 <nil>
}

func ExampleSchedule() {
	// The default dispatcher starts on first use; Reset shuts it down.
	defer procrastinate.Reset()

	v, err := procrastinate.Schedule(square, 6).Value()
	fmt.Println(v, err)
	// Output: 36 <nil>
}

func ExampleJoin() {
	defer procrastinate.Reset()

	var rs []*result.Result[int]
	for i := 1; i <= 5; i++ {
		rs = append(rs, procrastinate.Schedule(square, i))
	}
	if err := procrastinate.Join(context.Background()); err != nil { // waits until all five have answered
		fmt.Println(err)
		return
	}

	for _, r := range rs {
		ready := r.Ready()
		v, err := r.Value() // does not wait
		fmt.Println(ready, v, err)
	}
	// Output:
	// true 1 <nil>
	// true 4 <nil>
	// true 9 <nil>
	// true 16 <nil>
	// true 25 <nil>
}

func ExampleDefault() {
	defer procrastinate.Reset()

	// The default dispatcher, for the calls Schedule and Join do not offer.
	d, err := procrastinate.Default()
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := d.TryLock("setup")
	fmt.Println(l.Name(), err)
	l.Unlock()
	// Output: setup <nil>
}

func ExampleReset() {
	v, err := procrastinate.Schedule(square, 3, task.WithTimeout(time.Minute)).Value()
	fmt.Println(v, err)
	procrastinate.Reset() // its work is done and its children are gone

	// The next Schedule starts a new default dispatcher.
	v, err = procrastinate.Schedule(square, 4).Value()
	fmt.Println(v, err)
	procrastinate.Reset()
	// Output:
	// 9 <nil>
	// 16 <nil>
}
