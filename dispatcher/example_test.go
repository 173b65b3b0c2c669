package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// cube runs in a child process. Tasks are defined at package level, so
// that the parent and every child (a fresh start of the same program)
// know them by name; the test binary's TestMain calls procrastinate.Main
// first, as main does in a program.
var cube = task.Define("example.com/calc.cube", func(ctx context.Context, n int) (int, error) {
	return n * n * n, nil
})

func ExampleStart() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // everything is read before it runs; after a panic, nothing waits for the queue

	var results []*result.Result[int]
	for n := 1; n <= 4; n++ {
		results = append(results, cube.Schedule(d, n)) // never waits for a child
	}
	for _, r := range results {
		fmt.Println(r.Value()) // waits for the child's answer
	}

	// A strategy that cannot work is refused at once.
	_, err = dispatcher.Start(strategy.Throttled(0))
	fmt.Println(err)
	// Output:
	// 1 <nil>
	// 8 <nil>
	// 27 <nil>
	// 64 <nil>
	// dispatcher: refusing the strategy: strategy: Throttled(0): the limit must be at least 1
}

func ExampleDispatcher_Shutdown() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	a := cube.Schedule(d, 2)
	b := cube.Schedule(d, 3) // queued behind a: one child at a time

	// Shutdown takes no more work, lets what is queued and running finish,
	// and returns when no child, fd or goroutine of d is left. Past its
	// context's deadline it goes on as Close.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println(a.Ready(), b.Ready())
	fmt.Println(b.Value())

	_, err = cube.Schedule(d, 4).Value() // too late
	fmt.Println(err)
	fmt.Println(errors.Is(err, dispatcher.ErrClosed))
	// Output:
	// true true
	// 27 <nil>
	// dispatcher: closed; the task was not started
	// true
}

// nap is the argument of the task sleeper: the file that says it started,
// and whether it returns when its context ends.
type nap struct {
	Marker string
	Polite bool
}

// sleeper says that it started, then sleeps for an hour. A polite sleeper
// returns when its context ends: in the child, that happens on the stop
// frame that Close sends first. A rude one goes on sleeping until the SIGKILL
// that follows the grace period.
var sleeper = task.Define("example.com/calc.sleep", func(ctx context.Context, n nap) (string, error) {
	if err := os.WriteFile(n.Marker, nil, 0o600); err != nil {
		return "", err
	}
	if n.Polite {
		<-ctx.Done()
		return "", ctx.Err()
	}
	time.Sleep(time.Hour)
	return "rested", nil
})

func ExampleDispatcher_Close() {
	d, err := dispatcher.Start(strategy.Throttled(2), dispatcher.WithGracePeriod(100*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "example-close-")
	defer os.RemoveAll(dir)
	polite := sleeper.Schedule(d, nap{Marker: filepath.Join(dir, "polite"), Polite: true})
	rude := sleeper.Schedule(d, nap{Marker: filepath.Join(dir, "rude")})
	queued := sleeper.Schedule(d, nap{Marker: filepath.Join(dir, "queued")}) // waits for a free child
	waitForFile(filepath.Join(dir, "polite"))
	waitForFile(filepath.Join(dir, "rude"))

	// Close fails what is queued, asks the running children to stop,
	// sends SIGKILL after the grace period, and returns when they are
	// gone.
	d.Close()

	_, err = polite.Value()
	fmt.Println("polite:", err)

	_, err = rude.Value()
	var death *result.ChildDeath
	if errors.As(err, &death) {
		fmt.Println("rude:", death.Signal, errors.Is(err, dispatcher.ErrKilled))
	}

	_, err = queued.Value()
	fmt.Println("queued:", err)
	// Output:
	// polite: result: task "example.com/calc.sleep" failed: context canceled
	// rude: killed true
	// queued: dispatcher: closed; the task was not started
}

// waitForFile waits until path exists: here, until a child has started
// its task.
func waitForFile(path string) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
}

func ExampleDispatcher_Join() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // everything is read before it runs; after a panic, nothing waits for the queue

	var results []*result.Result[int]
	for n := 1; n <= 5; n++ {
		results = append(results, cube.Schedule(d, n))
	}
	if err := d.Join(context.Background()); err != nil { // waits until everything scheduled so far has resolved
		fmt.Println(err)
		return
	}

	ready, sum := 0, 0
	for _, r := range results {
		if r.Ready() { // Value will not wait
			ready++
		}
		v, _ := r.Value()
		sum += v
	}
	fmt.Println(ready, "of 5 ready after Join")
	fmt.Println("sum of cubes:", sum)
	// Output:
	// 5 of 5 ready after Join
	// sum of cubes: 225
}
