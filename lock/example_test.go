//go:build unix && !aix

package lock_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// tryReport tries the lock "report" in a child, and says what it found.
var tryReport = task.Define("example.com/lock.try-report", func(ctx context.Context, _ struct{}) (string, error) {
	l, err := task.TryLock(ctx, "report")
	if errors.Is(err, lock.ErrHeld) {
		return "held", nil
	}
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	return "taken", nil
})

func Example() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// The parent holds "report": a child cannot take it.
	l, err := d.Lock(context.Background(), "report")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tryReport.Schedule(d, struct{}{}).Value())

	// Released, it is free for the child.
	if err := l.Unlock(); err != nil {
		fmt.Println(err)
	}
	fmt.Println(tryReport.Schedule(d, struct{}{}).Value())
	// Output:
	// held <nil>
	// taken <nil>
}

func ExampleLock_Unlock() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	l, err := d.TryLock("db")
	fmt.Println("first:", l.Name(), err)

	// A second TryLock of the name is refused, even in this process.
	_, err = d.TryLock("db")
	fmt.Println("second:", err, errors.Is(err, lock.ErrHeld))

	l.Unlock()
	l2, err := d.TryLock("db")
	fmt.Println("after Unlock:", l2.Name(), err)
	l2.Unlock()
	// Output:
	// first: db <nil>
	// second: lock: held by another holder true
	// after Unlock: db <nil>
}

func ExampleNameError() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = d.TryLock("reports/2026")
	var ne *lock.NameError
	if errors.As(err, &ne) {
		fmt.Println(ne.Reason)
	}
	// Output: contains '/'
}
