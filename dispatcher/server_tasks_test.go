package dispatcher_test

// The tasks and workers of the server-mode and lock tests (server_test.go,
// locks_test.go). Like every test task they are defined at package level,
// so that the parent and every child register the same names.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/task"
)

// What a server-mode test worker does once it has logged its start.
const (
	workerWatch  = "watch"  // wait for its context to end, log "stop" and return nil
	workerIgnore = "ignore" // ignore SIGTERM and its context, and sleep
	workerExit   = "exit"   // exit at once with code 3
	workerLazy   = "lazy"   // wait for its context to end, sending no heartbeat, then log "stop"
	workerBusy   = "busy"   // send a heartbeat every Beat until its context ends, then log "stop"
	workerReturn = "return" // log "stop" and return nil at once
)

// serverArg is the argument of serverWorker.
type serverArg struct {
	Dir  string        // its log is Dir/log
	Mode string        // one of the worker* constants
	Beat time.Duration // workerBusy: the interval of its heartbeats
}

// workerExitCode is the exit status of a workerExit worker.
const workerExitCode = 3

// serverWorker is the server-mode worker of the tests. It appends
// "start <pid> <unix nanoseconds>" to its log as it starts and then does
// what its mode says.
var serverWorker = task.DefineWorker("dispatcher_test.server.worker", func(ctx context.Context, a serverArg) error {
	if a.Mode == workerIgnore {
		signal.Ignore(syscall.SIGTERM)
	}
	logf := func(format string, args ...any) error {
		return appendTo(filepath.Join(a.Dir, "log"), fmt.Sprintf(format+"\n", args...))
	}
	pid := os.Getpid()
	if err := logf("start %d %d", pid, time.Now().UnixNano()); err != nil {
		return err
	}
	switch a.Mode {
	case workerExit:
		os.Exit(workerExitCode)
	case workerIgnore:
		time.Sleep(time.Hour)
	case workerLazy:
		<-ctx.Done()
	case workerReturn:
	case workerBusy:
		tick := time.NewTicker(a.Beat)
		defer tick.Stop()
		for ctx.Err() == nil {
			if err := task.Heartbeat(ctx); err != nil {
				return err
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	default: // workerWatch
		<-ctx.Done()
	}
	return logf("stop %d", pid)
})

// workerEvent is one line of a server test's log.
type workerEvent struct {
	What string // "start" or "stop"
	Pid  int
	At   time.Time // when it started; zero for "stop"
}

// serverLog reads the log of the workers in dir; a missing log is empty.
func serverLog(t *testing.T, dir string) []workerEvent {
	t.Helper()
	events, err := readServerLog(dir)
	require.NoError(t, err)
	return events
}

// readServerLog is serverLog for goroutines other than the test's.
func readServerLog(dir string) ([]workerEvent, error) {
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []workerEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("log line %q: too short", line)
		}
		e := workerEvent{What: f[0]}
		if e.Pid, err = strconv.Atoi(f[1]); err != nil {
			return nil, fmt.Errorf("log line %q: %w", line, err)
		}
		if len(f) > 2 {
			ns, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("log line %q: %w", line, err)
			}
			e.At = time.Unix(0, ns)
		}
		out = append(out, e)
	}
	return out, nil
}

// started returns the pids of the workers in dir that logged their
// start, in order.
func started(t *testing.T, dir string) []int {
	t.Helper()
	return pidsOf(serverLog(t, dir), "start")
}

// stopped returns the pids of the workers in dir that returned through
// their context.
func stopped(t *testing.T, dir string) []int {
	t.Helper()
	return pidsOf(serverLog(t, dir), "stop")
}

func pidsOf(events []workerEvent, what string) []int {
	var pids []int
	for _, e := range events {
		if e.What == what {
			pids = append(pids, e.Pid)
		}
	}
	return pids
}

// aliveOf returns those of pids that run.
func aliveOf(pids []int) []int {
	var out []int
	for _, p := range pids {
		if testio.Alive(p) {
			out = append(out, p)
		}
	}
	return out
}

// lockArg is the argument of the lock tasks that wait at a gate.
type lockArg struct {
	Gate holdArg
	Name string
}

// turnsArg is the argument of takeTurns.
type turnsArg struct {
	File string        // the shared file, opened O_APPEND
	Name string        // the lock
	Hold time.Duration // how long it holds the lock between 'l' and 'u'
}

// waitArg is the argument of lockGivesUp.
type waitArg struct {
	Name string
	Wait time.Duration
}

var (
	// holdLock takes its lock with task.Lock, waits at the gate, releases
	// the lock (twice: the second Unlock must do nothing), and waits at
	// the gate again, so that the parent sees the lock free while the
	// task still runs.
	holdLock = task.Define("dispatcher_test.server.lock.hold", func(ctx context.Context, a lockArg) (int, error) {
		l, err := task.Lock(ctx, a.Name)
		if err != nil {
			return 0, err
		}
		if l.Name() != a.Name {
			return 0, fmt.Errorf("the lock is named %q; want %q", l.Name(), a.Name)
		}
		if err := passGate(ctx, a.Gate); err != nil {
			return 0, err
		}
		if err := l.Unlock(); err != nil {
			return 0, err
		}
		if err := l.Unlock(); err != nil {
			return 0, fmt.Errorf("the second Unlock: %w", err)
		}
		if err := passGate(ctx, a.Gate); err != nil {
			return 0, err
		}
		return os.Getpid(), nil
	})
	// syncLock waits at the gate without the lock, then again inside
	// task.Synchronize, then again after it.
	syncLock = task.Define("dispatcher_test.server.lock.synchronize", func(ctx context.Context, a lockArg) (int, error) {
		if err := passGate(ctx, a.Gate); err != nil {
			return 0, err
		}
		inside := false
		err := task.Synchronize(ctx, a.Name, func() error {
			inside = true
			return passGate(ctx, a.Gate)
		})
		if err != nil {
			return 0, err
		}
		if !inside {
			return 0, errors.New("Synchronize returned nil without running f")
		}
		if err := passGate(ctx, a.Gate); err != nil {
			return 0, err
		}
		return os.Getpid(), nil
	})
	// tryLock tries its lock with task.TryLock and says "held" or "taken"
	// (releasing it at once).
	tryLock = task.Define("dispatcher_test.server.lock.try", func(ctx context.Context, name string) (string, error) {
		l, err := task.TryLock(ctx, name)
		if errors.Is(err, lock.ErrHeld) {
			return "held", nil
		}
		if err != nil {
			return "", err
		}
		return "taken", l.Unlock()
	})
	// lockGivesUp waits for its lock with a context that ends after
	// a.Wait, and returns the error of task.Lock as text; it fails if the
	// error does not wrap context.DeadlineExceeded.
	lockGivesUp = task.Define("dispatcher_test.server.lock.gives-up", func(ctx context.Context, a waitArg) (string, error) {
		wctx, cancel := context.WithTimeout(ctx, a.Wait)
		defer cancel()
		l, err := task.Lock(wctx, a.Name)
		if err == nil {
			l.Unlock()
			return "", errors.New("task.Lock took a lock that another holder has")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("task.Lock = %w; want an error wrapping context.DeadlineExceeded", err)
		}
		return err.Error(), nil
	})
	// badLockNames tries each name with task.Lock and task.TryLock and
	// returns the reasons of the *lock.NameError each gave; any other
	// outcome is an error.
	badLockNames = task.Define("dispatcher_test.server.lock.bad-names", func(ctx context.Context, names []string) ([]string, error) {
		var reasons []string
		for _, name := range names {
			_, err := task.Lock(ctx, name)
			var ne *lock.NameError
			if !errors.As(err, &ne) {
				return nil, fmt.Errorf("task.Lock(%q) = %v; want a *lock.NameError", name, err)
			}
			if ne.Name != name {
				return nil, fmt.Errorf("task.Lock(%q): NameError.Name = %q", name, ne.Name)
			}
			if _, err := task.TryLock(ctx, name); !errors.As(err, &ne) {
				return nil, fmt.Errorf("task.TryLock(%q) = %v; want a *lock.NameError", name, err)
			}
			if err := task.Synchronize(ctx, name, func() error { return errors.New("f ran") }); !errors.As(err, &ne) {
				return nil, fmt.Errorf("task.Synchronize(%q) = %v; want a *lock.NameError", name, err)
			}
			reasons = append(reasons, ne.Reason)
		}
		return reasons, nil
	})
	// takeTurns is the worker of the gem's locking_spec: under the lock it
	// writes 'l' to the shared file, pauses, and writes 'u'. It answers
	// whether it found the lock held and had to wait.
	takeTurns = task.Define("dispatcher_test.server.lock.turns", func(ctx context.Context, a turnsArg) (bool, error) {
		f, err := os.OpenFile(a.File, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return false, err
		}
		defer f.Close()
		waited := false
		l, err := task.TryLock(ctx, a.Name)
		if errors.Is(err, lock.ErrHeld) {
			waited = true
			l, err = task.Lock(ctx, a.Name)
		}
		if err != nil {
			return false, err
		}
		defer l.Unlock()
		if _, err := f.Write([]byte{'l'}); err != nil {
			return false, err
		}
		time.Sleep(a.Hold)
		if _, err := f.Write([]byte{'u'}); err != nil {
			return false, err
		}
		return waited, l.Unlock()
	})
)
