package dispatcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// The tasks of the examples below.
var (
	// complain writes a line to its stderr and answers.
	complain = task.Define("example.com/dispatcher.complain", func(ctx context.Context, line string) (int, error) {
		fmt.Fprintln(os.Stderr, line)
		return len(line), nil
	})
	// untilStopped runs until its context ends, and fails with what ended
	// it: a failure that comes after the call's deadline is the call's
	// CancelError, but a value would be the call's value when it comes
	// before the dispatcher's own timer fires.
	untilStopped = task.Define("example.com/dispatcher.until-stopped", func(ctx context.Context, _ struct{}) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})
	// large answers with n bytes.
	large = task.Define("example.com/dispatcher.large", func(ctx context.Context, n int) ([]byte, error) {
		return make([]byte, n), nil
	})
	// quitter is a worker that exits at once.
	quitter = task.DefineWorker("example.com/dispatcher.quitter", func(ctx context.Context, code int) error {
		os.Exit(code)
		return nil
	})
)

func ExampleDispatcher_Submit() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// A *Dispatcher is a task.Scheduler: Schedule hands it the call,
	// through Submit. Any task.Scheduler will do in its place.
	var s task.Scheduler = d
	fmt.Println(cube.Schedule(s, 5).Value())
	// Output: 125 <nil>
}

func ExampleDispatcher_Lock() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// The same named lock as the dispatcher's children take with
	// task.Lock.
	l, err := d.Lock(context.Background(), "ledger")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Unlock()
	fmt.Println("holding", l.Name())
	// Output: holding ledger
}

func ExampleDispatcher_TryLock() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	l, err := d.TryLock("ledger")
	fmt.Println(err)
	_, err = d.TryLock("ledger") // held: refused at once
	fmt.Println(errors.Is(err, lock.ErrHeld))
	l.Unlock()
	// Output:
	// <nil>
	// true
}

// A server whose workers end more often than its restart limit allows
// gives up: Err says why, and the dispatcher shuts down on its own.
func ExampleDispatcher_Err() {
	d, err := dispatcher.Start(strategy.SpawnN(1, quitter, 3, strategy.MaxRestarts(0, time.Minute)),
		dispatcher.WithStderr(nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	<-d.Done() // the first end of a worker is one too many
	var limit *strategy.RestartLimitError
	var death *result.ChildDeath
	if errors.As(d.Err(), &limit) && errors.As(d.Err(), &death) {
		fmt.Println(limit.Worker, "exit code", death.ExitCode)
	}
	// Output: example.com/dispatcher.quitter exit code 3
}

func ExampleWithStderr() {
	var buf bytes.Buffer
	d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithStderr(&buf))
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := complain.Schedule(d, "disk almost full").Value(); err != nil {
		fmt.Println(err)
	}
	// The lines are written by then: Shutdown waits for the writer.
	if err := d.Shutdown(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Each line comes whole, behind "[task pid] ".
	line := strings.TrimSpace(buf.String())
	fmt.Println(strings.HasPrefix(line, "[example.com/dispatcher.complain "), line[strings.Index(line, "] ")+2:])
	// Output: true disk almost full
}

func ExampleWithStderrTail() {
	// With no tail kept, children write to the parent's stderr straight,
	// without a prefix, and a ChildDeath's Stderr stays empty.
	d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithStderrTail(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	fmt.Println(cube.Schedule(d, 2).Value())
	// Output: 8 <nil>
}

func ExampleWithGracePeriod() {
	d, err := dispatcher.Start(strategy.Simple(),
		dispatcher.WithGracePeriod(100*time.Millisecond), // SIGKILL this long after SIGTERM
		dispatcher.WithTermSignal(syscall.SIGINT))        // the first step of the termination sequence
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	// A call with a timeout is stopped with the termination sequence: its
	// task's context ends (at its deadline, or as SIGINT comes), and a
	// task that ignored it would be killed 100 ms later.
	_, err = untilStopped.Schedule(d, struct{}{}, task.WithTimeout(20*time.Millisecond)).Value()
	var ce *result.CancelError
	fmt.Println(errors.As(err, &ce), errors.Is(err, context.DeadlineExceeded))
	// Output: true true
}

func ExampleWithMaxPayload() {
	d, err := dispatcher.Start(strategy.Throttled(1), dispatcher.WithMaxPayload(1<<10), dispatcher.WithStderr(nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = large.Schedule(d, 1<<20).Value()
	var death *result.ChildDeath
	fmt.Println(errors.As(err, &death), strings.Contains(err.Error(), "dispatcher.WithMaxPayload"))
	// Output: true true
}

func ExampleWithStartRetry() {
	// Fail a task at once when the system refuses its child, rather than
	// retry its start for ten seconds.
	d, err := dispatcher.Start(strategy.Throttled(2), dispatcher.WithStartRetry(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	fmt.Println(cube.Schedule(d, 3).Value())
	// Output: 27 <nil>
}

// logLines is a logger (an hclog.Logger or a *slog.Logger will do) that
// prints its error lines.
type logLines struct{}

func (logLines) Debug(string, ...any) {}
func (logLines) Info(string, ...any)  {}
func (logLines) Warn(string, ...any)  {}
func (logLines) Error(msg string, _ ...any) {
	fmt.Println("logged:", msg)
}

func ExampleWithLogger() {
	d, err := dispatcher.Start(strategy.SpawnN(1, quitter, 4, strategy.MaxRestarts(0, time.Minute)),
		dispatcher.WithLogger(logLines{}), dispatcher.WithStderr(nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	<-d.Done()
	// Output: logged: the strategy gave up; shutting down
}

func ExampleDispatcher_Done() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cube.Schedule(d, 4).Value())
	go d.Shutdown(context.Background())

	// Done is closed once the dispatcher has ended and its children are
	// gone, whoever ended it; Err then says whether it ended on an error.
	<-d.Done()
	fmt.Println(d.Err())
	// Output:
	// 64 <nil>
	// <nil>
}
