//go:build unix && !aix

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/procrastinate-go/procrastinate/lock"
)

func Example() {
	// The parent makes the directory; children would Open its Path.
	dir, err := lock.Create("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dir.Remove()

	err = dir.Do(context.Background(), "report", func() error {
		fmt.Println("writing the report; no other holder of \"report\" runs now")
		return nil
	})
	fmt.Println("Do:", err)
	// Output:
	// writing the report; no other holder of "report" runs now
	// Do: <nil>
}

func ExampleDir_TryLock() {
	dir, err := lock.Create("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dir.Remove()

	l, err := dir.TryLock("db")
	fmt.Println("first:", l.Name(), err)

	// A second Lock on the same name is refused, even in this process.
	_, err = dir.TryLock("db")
	fmt.Println("second:", err, errors.Is(err, lock.ErrHeld))

	l.Unlock()
	l2, err := dir.TryLock("db")
	fmt.Println("after Unlock:", l2.Name(), err)
	l2.Unlock()
	// Output:
	// first: db <nil>
	// second: lock: held by another holder true
	// after Unlock: db <nil>
}

func ExampleDir_Lock() {
	dir, err := lock.Create("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dir.Remove()

	held, _ := dir.TryLock("db")
	defer held.Unlock()

	// Wait at most 20ms for it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = dir.Lock(ctx, "db")
	fmt.Println(err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// lock: waiting for "db": context deadline exceeded
	// true
}

func ExampleNameError() {
	dir, err := lock.Create("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dir.Remove()

	_, err = dir.TryLock("../etc/passwd")
	var ne *lock.NameError
	if errors.As(err, &ne) {
		fmt.Println("reason:", ne.Reason)
	}
	fmt.Println(err)
	// Output:
	// reason: contains '/'
	// lock: bad lock name "../etc/passwd": contains '/'
}
