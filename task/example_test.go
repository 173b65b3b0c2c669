package task_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// Tasks are defined at package level, so that the program and each of its
// children (fresh starts of the same executable, which run
// procrastinate.Main first thing in main or TestMain) know them by name.
var square = task.Define("example.com/calc.square", func(ctx context.Context, n int) (int, error) {
	if n < 0 {
		return 0, errors.New("negative input")
	}
	return n * n, nil
})

func ExampleDefine() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // everything is read before it runs; after a panic, nothing waits for the queue

	fmt.Println(square.Name())

	r := square.Schedule(d, 7) // returns at once
	v, err := r.Value()        // waits for the child's answer
	fmt.Println(v, err)

	// A task's error comes back as a *result.TaskError.
	_, err = square.Schedule(d, -1).Value()
	var te *result.TaskError
	if errors.As(err, &te) {
		fmt.Println("failed:", te.Message)
	}
	// Output:
	// example.com/calc.square
	// 49 <nil>
	// failed: negative input
}

// An order travels as JSON, with its field tags, both ways.
type order struct {
	Item     string `json:"item"`
	Quantity int    `json:"qty"`
}

type receipt struct {
	Line string `json:"line"`
}

var place = task.Define("example.com/shop.place", func(ctx context.Context, o order) (receipt, error) {
	return receipt{Line: fmt.Sprintf("%d × %s", o.Quantity, strings.ToUpper(o.Item))}, nil
}, task.WithCodec(task.JSON))

func ExampleWithCodec() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // everything is read before it runs; after a panic, nothing waits for the queue

	r, err := place.Schedule(d, order{Item: "tea", Quantity: 2}).Value()
	fmt.Println(r.Line, err)
	// Output: 2 × TEA <nil>
}

// A worker for server mode: it runs until its context ends.
var tick = task.DefineWorker("example.com/clock.tick", func(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // Shutdown ends the context: return cleanly
		case <-t.C:
			if err := task.Heartbeat(ctx); err != nil {
				return err
			}
		}
	}
})

func ExampleDefineWorker() {
	d, err := dispatcher.Start(strategy.SpawnN(2, tick, 10*time.Millisecond,
		strategy.CallOptions(task.WithActivityTimeout(time.Second))))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tick.Name())
	// Shutdown ends the workers' contexts; they return.
	fmt.Println(d.Shutdown(context.Background()), d.Err())
	// Output:
	// example.com/clock.tick
	// <nil> <nil>
}

func ExampleDef_Schedule() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// Schedule returns at once; each future resolves when its child answers.
	a, b := square.Schedule(d, 3), square.Schedule(d, 4)
	va, _ := a.Value()
	vb, _ := b.Value()
	fmt.Println(va + vb)
	// Output: 25
}

// sleepy sleeps for its argument, or until its context ends.
var sleepy = task.Define("example.com/clock.sleepy", func(ctx context.Context, d time.Duration) (string, error) {
	select {
	case <-time.After(d):
		return "slept", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
})

func ExampleWithTimeout() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = sleepy.Schedule(d, time.Hour, task.WithTimeout(10*time.Millisecond)).Value()
	var ce *result.CancelError
	fmt.Println(errors.As(err, &ce), errors.Is(err, context.DeadlineExceeded))
	// Output: true true
}

func ExampleWithContext() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // cancelled before it was scheduled: it never starts
	_, err = sleepy.Schedule(d, time.Hour, task.WithContext(ctx)).Value()
	var ce *result.CancelError
	if errors.As(err, &ce) {
		fmt.Println(ce.Started, errors.Is(err, context.Canceled))
	}
	// Output: false true
}

// flaky exits without answering on its first try: the file at its path
// says that it ran before.
var flaky = task.Define("example.com/retry.flaky", func(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			return "", err
		}
		os.Exit(3)
	}
	return "done on a later try", nil
})

func ExampleWithRetries() {
	d, err := dispatcher.Start(strategy.Simple(), dispatcher.WithStderr(nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	dir, err := os.MkdirTemp("", "retries")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	v, err := flaky.Schedule(d, filepath.Join(dir, "ran"), task.WithRetries(2, time.Millisecond)).Value()
	fmt.Println(v, err)
	// Output: done on a later try <nil>
}

// beats sends heartbeats while it works.
var beats = task.Define("example.com/health.beats", func(ctx context.Context, n int) (int, error) {
	for i := range n {
		time.Sleep(time.Millisecond) // a slice of the work
		if err := task.Heartbeat(ctx); err != nil {
			return i, err
		}
	}
	return n, nil
})

func ExampleWithActivityTimeout() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// Killed if it goes five seconds without a heartbeat.
	fmt.Println(beats.Schedule(d, 20, task.WithActivityTimeout(5*time.Second)).Value())
	// Output: 20 <nil>
}

func ExampleHeartbeat() {
	// Outside a task, there is no parent to tell.
	fmt.Println(task.Heartbeat(context.Background()))
	// Output: task: not called with the context of a task running in a child process
}

// workDir answers with its child's working directory.
var workDir = task.Define("example.com/env.work-dir", func(ctx context.Context, _ struct{}) (string, error) {
	return os.Getwd()
})

func ExampleWithProcess() {
	d, err := dispatcher.Start(strategy.Throttled(2, strategy.Reuse(strategy.Unlimited)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// A child of its own, in another directory, at a lower priority and
	// with at most ten seconds of CPU.
	wd, err := workDir.Schedule(d, struct{}{}, task.WithProcess(task.Process{
		Dir:     os.TempDir(),
		Nice:    5,
		CPUTime: 10 * time.Second,
	})).Value()
	fmt.Println(wd == os.TempDir(), err)
	// Output: true <nil>
}

func ExampleRaw() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// A call that arrives as bytes (from another machine, say) runs by the
	// task's name; its answer stays encoded, as the task's codec made it.
	arg, err := task.JSON.Marshal(9)
	if err != nil {
		fmt.Println(err)
		return
	}
	answer, err := task.Raw("example.com/calc.square").Schedule(d, arg).Value()
	if err != nil {
		fmt.Println(err)
		return
	}
	var v int
	fmt.Println(task.JSON.Unmarshal(answer, &v), v)

	// A name that no task has fails at once.
	_, err = task.Raw("example.com/calc.cube").Schedule(d, arg).Value()
	var te *result.TaskError
	fmt.Println(errors.As(err, &te))
	// Output:
	// <nil> 81
	// true
}

// memo is a Scheduler that answers the calls it has seen before from
// memory, and hands the others to next.
type memo struct {
	next    task.Scheduler
	answers map[string][]byte // by task name and encoded argument
}

func (m *memo) Submit(c *task.Call) {
	key := c.Task + "\x00" + string(c.Arg)
	if a, ok := m.answers[key]; ok {
		c.Resolve(a)
		return
	}
	m.next.Submit(c)
}

func ExampleScheduler() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	arg, _ := task.JSON.Marshal(12)
	answer, _ := task.JSON.Marshal(144)
	m := &memo{next: d, answers: map[string][]byte{square.Name() + "\x00" + string(arg): answer}}
	fmt.Println(square.Schedule(m, 12).Value()) // from memory
	fmt.Println(square.Schedule(m, 13).Value()) // from a child
	// Output:
	// 144 <nil>
	// 169 <nil>
}

// refuse is a Scheduler that takes no work.
type refuse struct{}

func (refuse) Submit(c *task.Call) { c.Fail(errors.New("no capacity today")) }

func ExampleCall_Fail() {
	_, err := square.Schedule(refuse{}, 2).Value()
	fmt.Println(err)
	// Output: no capacity today
}

// appendLine appends a line to the file at Path, under the lock
// "ledger", which the parent and every child of the dispatcher share.
var appendLine = task.Define("example.com/ledger.append", func(ctx context.Context, e entry) (struct{}, error) {
	return struct{}{}, task.Synchronize(ctx, "ledger", func() error {
		f, err := os.OpenFile(e.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(f, e.Line)
		return errors.Join(err, f.Close())
	})
})

type entry struct{ Path, Line string }

func ExampleSynchronize() {
	d, err := dispatcher.Start(strategy.Throttled(4))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	dir, err := os.MkdirTemp("", "ledger")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ledger")

	var rs []*result.Result[struct{}]
	for i := range 8 {
		rs = append(rs, appendLine.Schedule(d, entry{Path: path, Line: fmt.Sprintf("entry %d", i)}))
	}
	for _, r := range rs {
		if _, err := r.Value(); err != nil {
			fmt.Println(err)
		}
	}
	b, _ := os.ReadFile(path)
	fmt.Println(strings.Count(string(b), "\n"), "whole lines")
	// Output: 8 whole lines
}

// holdOrSkip does its work only if no one else holds the lock "nightly".
var holdOrSkip = task.Define("example.com/jobs.nightly", func(ctx context.Context, _ struct{}) (string, error) {
	l, err := task.TryLock(ctx, "nightly")
	if errors.Is(err, lock.ErrHeld) {
		return "skipped: another run holds it", nil
	}
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	return "ran", nil
})

func ExampleTryLock() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	fmt.Println(holdOrSkip.Schedule(d, struct{}{}).Value())
	l, err := d.Lock(context.Background(), "nightly") // the parent holds it now
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(holdOrSkip.Schedule(d, struct{}{}).Value())
	l.Unlock()
	// Output:
	// ran <nil>
	// skipped: another run holds it <nil>
}

// waitForLock waits for the lock "setup", up to its own timeout.
var waitForLock = task.Define("example.com/jobs.setup", func(ctx context.Context, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	l, err := task.Lock(ctx, "setup")
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	return "set up", nil
})

func ExampleLock() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	fmt.Println(waitForLock.Schedule(d, time.Minute).Value())

	l, err := d.Lock(context.Background(), "setup")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Unlock()
	_, err = waitForLock.Schedule(d, 10*time.Millisecond).Value() // gives up
	fmt.Println(strings.Contains(err.Error(), "deadline exceeded"))
	// Output:
	// set up <nil>
	// true
}

func ExampleJSON() {
	// The default codec: encoding/json, with short cuts for a []byte and
	// a plain number, bool or string.
	b, err := task.JSON.Marshal(map[string]int{"a": 1})
	fmt.Println(string(b), err, task.JSON.Name())
	var m map[string]int
	fmt.Println(task.JSON.Unmarshal(b, &m), m["a"])
	// Output:
	// {"a":1} <nil> json
	// <nil> 1
}
