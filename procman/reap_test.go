package procman_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/procman"
)

// funcHandler adapts two functions to a Handler.
type funcHandler struct {
	message func(p *procman.Process, k procman.Kind, payload []byte)
	exited  func(p *procman.Process, e *procman.Exit)
}

// Reply and Note implement procman.Handler: each records like Message.
func (h funcHandler) Reply(p *procman.Process, k procman.Kind, payload []byte) {
	h.Message(p, k, payload)
}

func (h funcHandler) Note(p *procman.Process, k procman.Kind, payload []byte) {
	h.Message(p, k, payload)
}

func (h funcHandler) Message(p *procman.Process, k procman.Kind, payload []byte) {
	if h.message != nil {
		h.message(p, k, payload)
	}
}

func (h funcHandler) Exited(p *procman.Process, e *procman.Exit) { h.exited(p, e) }

// churn starts total children on m, at most window at a time, each from
// spec(i) and reported to h, and steps until all have exited. It returns
// the first error; it may run on any goroutine that owns m.
func churn(m *procman.Manager, total, window int, spec func(i int) procman.Spec, h func(i int) procman.Handler) error {
	started, exited := 0, 0
	var failed error
	next := func() {
		for started < total && started-exited < window && failed == nil {
			i := started
			started++
			inner := h(i)
			_, err := m.CreateProcess(spec(i), funcHandler{inner.Reply, func(p *procman.Process, e *procman.Exit) {
				inner.Exited(p, e)
				exited++
			}})
			if err != nil {
				failed = fmt.Errorf("starting child %d: %w", i, err)
			}
		}
	}
	next()
	// Stuck means no child exited for safety: a slow machine may take
	// longer than that for the whole run.
	deadline := time.Now().Add(safety)
	m.SetDeadline(deadline)
	defer m.SetDeadline(time.Time{})
	for exited < started && failed == nil {
		before := exited
		if err := m.Step(); err != nil {
			return err
		}
		if exited > before {
			deadline = time.Now().Add(safety)
			m.SetDeadline(deadline)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("stuck: no child exited for %v, with %d of %d exited", safety, exited, started)
		}
		next()
	}
	return failed
}

// Nothing in procman waits on "any child": os/exec in other goroutines and a
// second manager in the same process each get their own exit statuses.
func TestExitStatusesAreNeverStolen(t *testing.T) {
	leakcheck.Check(t)
	perManager := 150
	if testing.Short() {
		perManager = 50
	}
	stop := make(chan struct{})
	var execs sync.WaitGroup
	var ran atomic.Int64
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"true"}, 0},
	} {
		execs.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := exec.Command(tc.args[0], tc.args[1:]...).Run()
				code := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				} else if err != nil {
					t.Errorf("%v: %v", tc.args, err)
					return
				}
				if code != tc.want {
					t.Errorf("%v: Wait saw exit code %d; want %d", tc.args, code, tc.want)
				}
				ran.Add(1)
			}
		})
	}

	var managers sync.WaitGroup
	var reaped atomic.Int64
	for k := range 2 {
		managers.Go(func() {
			m := procman.New()
			if err := m.Setup(); err != nil {
				t.Error(err)
				return
			}
			defer m.Teardown()
			code := func(i int) int { return 3 + (i*7+k*101)%250 }
			want := map[int]int{} // pid -> exit code
			err := churn(m, perManager, 8,
				func(i int) procman.Spec {
					return procman.Spec{Invocation: work("exit", strconv.Itoa(code(i)), true)}
				},
				func(i int) procman.Handler {
					return funcHandler{exited: func(p *procman.Process, e *procman.Exit) {
						reaped.Add(1)
						want[p.Pid()] = code(i)
						if e.Pid != p.Pid() || e.ExitCode != code(i) || e.Signal != 0 || e.Err != nil {
							t.Errorf("manager %d, child %d (pid %d): %v; want pid %d, exit code %d", k, i, p.Pid(), e, p.Pid(), code(i))
						}
					}}
				})
			if err != nil {
				t.Errorf("manager %d: %v", k, err)
			}
			if len(want) != perManager {
				t.Errorf("manager %d: %d distinct children exited; want %d", k, len(want), perManager)
			}
		})
	}
	managers.Wait()
	close(stop)
	execs.Wait()
	require.Equal(t, int64(2*perManager), reaped.Load())
	require.Positive(t, ran.Load(), "os/exec commands that ran alongside")
	t.Logf("%d children reaped by two managers while os/exec ran %d commands", reaped.Load(), ran.Load())
}

// The gem shipped a bug (fixed in 0.4.0) where a child that answered and
// exited at once was reported dead: its exit was seen before its answer was
// read. Exited must come after every frame the child wrote.
func TestExitedComesAfterTheChildsAnswer(t *testing.T) {
	leakcheck.Check(t)
	total := 1000
	if raceEnabled || testing.Short() {
		total = 400 // a race-instrumented child costs about 10 ms of CPU to start and end
	}
	m := newManager(t)
	answered := map[*procman.Process][]byte{}
	var bad []string
	complain := func(format string, args ...any) {
		if len(bad) < 10 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	exits := 0
	err := churn(m, total, 16,
		func(i int) procman.Spec {
			return procman.Spec{Invocation: work("answer-exit", strconv.Itoa(i), true)}
		},
		func(i int) procman.Handler {
			seenExit := false
			return funcHandler{
				message: func(p *procman.Process, k procman.Kind, payload []byte) {
					if seenExit {
						complain("child %d: a %v frame after Exited", i, k)
					}
					if s := p.State(); s != procman.StateRunning && s != procman.StateStopped {
						complain("child %d: Message in state %v", i, s)
					}
					answered[p] = payload
				},
				exited: func(p *procman.Process, e *procman.Exit) {
					seenExit = true
					exits++
					a, ok := answered[p]
					switch {
					case !ok:
						complain("child %d was reported exited (%v) without its answer", i, e)
					case string(a) != strconv.Itoa(i):
						complain("child %d answered %q; want %q", i, a, strconv.Itoa(i))
					}
					if !e.Success() {
						complain("child %d: %v", i, e)
					}
					if s := p.State(); s != procman.StateRemovable {
						complain("child %d: Exited in state %v; want removable", i, s)
					}
				},
			}
		})
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Equal(t, total, exits)
	require.Len(t, answered, total)
}
