package result_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var square = task.Define("example.com/result.square", func(ctx context.Context, n int) (int, error) {
	if n < 0 {
		return 0, errors.New("negative input")
	}
	return n * n, nil
})

// waitForStop runs until its context ends: it is cancelled, or its
// dispatcher closes.
var waitForStop = task.Define("example.com/result.wait-for-stop", func(ctx context.Context, _ struct{}) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
})

// crash ends its child without an answer.
var crash = task.Define("example.com/result.crash", func(ctx context.Context, code int) (int, error) {
	os.Exit(code)
	return 0, nil
})

func ExampleResult() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := square.Schedule(d, 7) // returns at once
	v, err := r.Value()        // waits for the child's answer
	fmt.Println(v, err)
	// Output: 49 <nil>
}

func ExampleResult_Wait() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // ends the task that is still running

	r := waitForStop.Schedule(d, struct{}{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = r.Wait(ctx) // gives up; the task goes on
	fmt.Println(err, r.Ready())
	// Output: context deadline exceeded false
}

func ExampleResult_Done() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	a, b := square.Schedule(d, 3), square.Schedule(d, 4)
	aDone, bDone := a.Done(), b.Done()
	sum := 0
	for range 2 {
		select { // whichever answers first
		case <-aDone:
			v, _ := a.Value() // does not wait
			sum += v
			aDone = nil // a nil channel is never selected
		case <-bDone:
			v, _ := b.Value()
			sum += v
			bDone = nil
		}
	}
	fmt.Println(sum)
	// Output: 25
}

func ExampleResult_Err() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := square.Schedule(d, -1)
	<-r.Done()
	fmt.Println(r.Err()) // does not wait: the future is resolved
	// Output: result: task "example.com/result.square" failed: negative input
}

func ExampleTaskError() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = square.Schedule(d, -1).Value()
	var te *result.TaskError
	if errors.As(err, &te) {
		fmt.Println(te.Task, te.Message, te.Panicked)
	}
	// Output: example.com/result.square negative input false
}

func ExampleChildDeath() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = crash.Schedule(d, 3).Value()
	var death *result.ChildDeath
	if errors.As(err, &death) {
		fmt.Println("exit code:", death.ExitCode)
	}
	// Output: exit code: 3
}

func ExampleChildDeath_Error() {
	var err error = &result.ChildDeath{
		Task:     "square",
		Pid:      1234,
		ExitCode: -1,
		Signal:   syscall.SIGKILL,
		Duration: 12 * time.Millisecond,
	}
	err = fmt.Errorf("waiting for square(7): %w", err)
	var death *result.ChildDeath
	if errors.As(err, &death) {
		fmt.Println("signal:", death.Signal)
		fmt.Println(death)
	}
	// Output:
	// signal: killed
	// result: task "square": child 1234 died before answering: killed by signal 9 (killed) after 12ms
}

func ExampleCancelError() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = waitForStop.Schedule(d, struct{}{}, task.WithTimeout(10*time.Millisecond)).Value()
	var ce *result.CancelError
	if errors.As(err, &ce) {
		fmt.Println(errors.Is(err, context.DeadlineExceeded))
	}
	// Output: true
}

func ExampleRetryError() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = crash.Schedule(d, 2, task.WithRetries(1, time.Millisecond)).Value()
	var re *result.RetryError
	if errors.As(err, &re) {
		fmt.Println(len(re.Deaths), "tries died")
	}
	// Output: 2 tries died
}

func ExampleResult_Ready() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	r := waitForStop.Schedule(d, struct{}{})
	fmt.Println(r.Ready()) // never waits: the task runs until it is stopped
	d.Close()              // kills its child and resolves its future
	<-r.Done()
	fmt.Println(r.Ready())
	// Output:
	// false
	// true
}
