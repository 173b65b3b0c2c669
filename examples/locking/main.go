// Locking runs eight tasks, four at a time, that each add one to a balance
// kept in a shared file: read it, think a moment, write it back. Each does
// so under the lock "ledger" (task.Lock), so they take turns and no update
// is lost; each prints its turn. While they run, the parent takes the same
// lock (Dispatcher.Lock) to read a balance that no task is halfway through
// changing.
//
//	go run ./examples/locking
//	go run ./examples/locking -nolock   # the same without the lock: updates get lost
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func main() {
	procrastinate.Main() // first thing: a child runs its task here and exits

	noLock := flag.Bool("nolock", false, "update the balance without the lock")
	flag.Parse()
	const tasks = 8
	balance, midway, err := run(tasks, 4, 20*time.Millisecond, !*noLock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "locking:", err)
		os.Exit(1)
	}
	if midway >= 0 {
		fmt.Printf("parent %d: holding the lock while the deposits ran, it read the balance %d\n", os.Getpid(), midway)
	}
	fmt.Printf("%d deposits of 1; the balance is %d", tasks, balance)
	if balance != tasks {
		fmt.Printf(": %d updates were lost", tasks-balance)
	}
	fmt.Println()
}

// Deposit is the argument of a deposit task.
type Deposit struct {
	Ledger string        // the file that holds the balance
	Think  time.Duration // the pause between reading and writing it
	Lock   bool          // take the lock around the update
}

// deposit adds one to the balance in the ledger and answers with the
// balance it read.
var deposit = task.Define("github.com/procrastinate-go/procrastinate/examples/locking.deposit", func(ctx context.Context, d Deposit) (int, error) {
	if d.Lock {
		// Waits while another task, or the parent, holds the lock; gives
		// up if ctx ends first.
		l, err := task.Lock(ctx, "ledger")
		if err != nil {
			return 0, err
		}
		defer l.Unlock()
	}
	balance, err := read(d.Ledger)
	if err != nil {
		return 0, err
	}
	time.Sleep(d.Think) // another task without the lock would read the same balance now
	if err := write(d.Ledger, balance+1); err != nil {
		return 0, err
	}
	fmt.Printf("pid %d: balance %d -> %d\n", os.Getpid(), balance, balance+1)
	return balance, nil
})

// write replaces the balance in the ledger at once (a rename), so that a
// reader never sees a file half written, even without the lock.
func write(ledger string, balance int) error {
	tmp := fmt.Sprintf("%s.%d", ledger, os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(balance)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, ledger)
}

func read(ledger string) (int, error) {
	b, err := os.ReadFile(ledger)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// run schedules n deposits under Throttled(parallel) and returns the
// final balance, and the balance that the parent read under the lock while
// the deposits ran (-1 without the lock).
func run(n, parallel int, think time.Duration, lock bool) (balance, midway int, err error) {
	dir, err := os.MkdirTemp("", "locking-example-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	ledger := filepath.Join(dir, "ledger")
	if err := os.WriteFile(ledger, []byte("0"), 0o600); err != nil {
		return 0, 0, err
	}

	d, err := dispatcher.Start(strategy.Throttled(parallel))
	if err != nil {
		return 0, 0, err
	}
	// On the way out of an error (or a panic), Close: it drops what is
	// still queued and stops the children at once. A deferred Shutdown
	// would wait for every queued deposit to run first.
	defer d.Close()

	results := make([]*result.Result[int], n)
	for i := range results {
		results[i] = deposit.Schedule(d, Deposit{Ledger: ledger, Think: think, Lock: lock})
	}

	// The parent takes part too: once a deposit is done, it reads, under
	// the lock, a balance that no task is halfway through changing.
	<-results[n/2].Done()
	midway = -1
	if lock {
		l, err := d.Lock(context.Background(), "ledger")
		if err != nil {
			return 0, 0, err
		}
		midway, err = read(ledger)
		if err := errors.Join(err, l.Unlock()); err != nil {
			return 0, 0, err
		}
	}

	for i, r := range results {
		if _, err := r.Value(); err != nil {
			return 0, 0, fmt.Errorf("deposit %d: %w", i, err)
		}
	}
	// All answered: Shutdown only waits for the children to exit, within
	// a deadline. (The deferred Close then does nothing.)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		return 0, 0, err
	}
	balance, err = read(ledger)
	return balance, midway, err
}
