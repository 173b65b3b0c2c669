package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/frametest"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// The chaos test's knobs. PROCRASTINATE_CHAOS_N sets the number of tasks
// of each pass: 500 by default, 200 with -short. PROCRASTINATE_CHAOS_SEED
// replays a run whose seed a failure logged.
const (
	chaosEnvN    = "PROCRASTINATE_CHAOS_N"
	chaosEnvSeed = "PROCRASTINATE_CHAOS_SEED"
	chaosDefault = 500

	chaosInFlight = 12                    // tasks scheduled and not yet resolved, at most
	chaosTimeout  = 50 * time.Millisecond // the deadline of the tasks that hang
	chaosGrace    = 50 * time.Millisecond // SIGTERM to SIGKILL
	chaosHangup   = 50 * time.Millisecond // a closed message pipe to SIGKILL
)

// TestRandomMisbehaviourResolvesEveryFutureToItsOutcome runs tasks whose children, chosen at random, answer, fail,
// panic, exit, kill themselves, hang past their deadline, write garbage,
// close their pipe and keep running, or exit without a word, side by
// side. Every future must resolve, once, to the kind of outcome its child
// chose, and nothing may be left behind. It runs twice, side by side,
// each pass on a dispatcher of its own: with a fresh child for every
// task, and with children that serve up to 50. The leak check covers
// both passes, once both have ended.
func TestRandomMisbehaviourResolvesEveryFutureToItsOutcome(t *testing.T) {
	n := chaosDefault
	if testing.Short() {
		n = 200
	}
	if s := os.Getenv(chaosEnvN); s != "" {
		var err error
		n, err = strconv.Atoi(s)
		require.NoError(t, err, chaosEnvN)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(chaosEnvSeed); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, chaosEnvSeed)
	}
	t.Logf("%d tasks a pass; seed %d (replay with %s=%d)", n, seed, chaosEnvSeed, seed)
	checkLeaks(t)
	t.Run("fresh children", func(t *testing.T) {
		t.Parallel()
		runChaos(t, strategy.Throttled(4), n, seed, false, false)
	})
	t.Run("children reused 50 times", func(t *testing.T) {
		t.Parallel()
		runChaos(t, strategy.Throttled(4, strategy.Reuse(50)), n, seed+1, false, false)
	})
}

// TestStatsCountersMatchStatesThroughChaos runs the chaos test's tasks,
// pipelined in reused children beside children of their own, and after
// every future resolves, and once all have, checks Stats' Queued and
// Running and the dispatcher's own counts against the states of its jobs
// and children.
func TestStatsCountersMatchStatesThroughChaos(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 100
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d tasks; seed %d (the chaos test's %s replays its tasks)", n, seed, chaosEnvSeed)
	runChaos(t, strategy.Throttled(4, strategy.Reuse(50), strategy.Pipeline(4)), n, seed, true, true)
}

// chaosOutcome is what one future resolved to.
type chaosOutcome struct {
	v   int
	err error
}

// runChaos runs n tasks of random misbehaviour on a dispatcher with
// strategy s. With audit, the dispatcher's counters are checked against
// its states after each future resolves, and after Join. With alone (no
// other test runs beside it), it checks that nothing is left behind, and
// that Shutdown left nothing at all.
func runChaos(t *testing.T, s strategy.Strategy, n int, seed uint64, audit, alone bool) {
	var snap *leakcheck.Snapshot
	if alone {
		checkLeaks(t)
		snap = leakcheck.Take()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	args := make([]chaosArg, n)
	for i := range args {
		a := chaosArg{Act: chaosAct(rng.IntN(int(numActs)))}
		switch a.Act {
		case actAnswer, actGarbage:
			a.Code = rng.IntN(1 << 20)
		case actExit:
			a.Code = 1 + rng.IntN(125)
		}
		if a.Act == actGarbage {
			a.Garbage = make([]byte, 5+rng.IntN(60))
			for k := range a.Garbage {
				a.Garbage[k] = byte(rng.Uint32())
			}
			// Not a frame kind: one past the last, up to 255.
			a.Garbage[4] = byte(int(frametest.MaxClass) + 1 + rng.IntN(255-int(frametest.MaxClass)))
			if rng.IntN(4) == 0 {
				a.Garbage[4] = 0
			}
		}
		args[i] = a
	}

	d := start(t, s,
		dispatcher.WithStderr(nil), // the SIGSEGV dumps; their tails are kept
		dispatcher.WithGracePeriod(chaosGrace),
		procmanOptions(procman.WithHangupWait(chaosHangup)))
	outcomes := make([]chaosOutcome, n)
	futures := make([]*result.Result[int], n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var auditMu sync.Mutex
	var audits []string
	began := time.Now()
	for range chaosInFlight {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var opts []task.CallOption
				if args[i].Act == actHang {
					opts = append(opts, task.WithTimeout(chaosTimeout))
				}
				r := chaos.Schedule(d, args[i], opts...)
				futures[i] = r
				select {
				case <-r.Done():
					outcomes[i].v, outcomes[i].err = r.Value()
				case <-time.After(60 * time.Second):
					outcomes[i].err = fmt.Errorf("chaos: task %d (%v) did not resolve in 60s", i, args[i].Act)
				}
				if audit {
					if err := dispatcher.Audit(d); err != nil {
						auditMu.Lock()
						audits = append(audits, fmt.Sprintf("after task %d: %v", i, err))
						auditMu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, d.Join(ctx), "Join after every future resolved")
	if audit {
		require.Empty(t, audits, "audits while the tasks ran: counters that disagree with the states")
		require.NoError(t, dispatcher.Audit(d), "the audit after Join")
		st := d.Stats()
		require.Zero(t, st.Queued, "Queued after Join")
		require.Zero(t, st.Running, "Running after Join")
		require.Equal(t, int64(n), st.Done(), "calls done after Join")
	}
	shutdown(t, d, snap)

	counts := map[string]int{}
	var bad []string
	for i, o := range outcomes {
		kind, err := checkChaos(args[i], o)
		counts[kind]++
		if err != nil {
			bad = append(bad, fmt.Sprintf("task %d (%v): %v", i, args[i].Act, err))
			continue
		}
		// Exactly once: every later read gives the same.
		v, err := futures[i].Value()
		if v != o.v || err != o.err {
			bad = append(bad, fmt.Sprintf("task %d (%v): read %v, %v, then %v, %v", i, args[i].Act, o.v, o.err, v, err))
		}
	}
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("and %d more", len(bad)-10))
	}
	require.Empty(t, bad, "seed %d", seed)
	var kinds []string
	for _, k := range []string{"value", "task error", "child death", "cancelled"} {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, counts[k]))
	}
	t.Logf("%s: %d tasks in %v, %.0f tasks/s; %s", s, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), strings.Join(kinds, ", "))
}

// checkChaos checks that o is the outcome a's act must give, and returns
// its kind.
func checkChaos(a chaosArg, o chaosOutcome) (string, error) {
	var (
		te *result.TaskError
		cd *result.ChildDeath
		ce *result.CancelError
	)
	switch {
	case o.err == nil:
		if a.Act != actAnswer {
			return "value", fmt.Errorf("a value (%d); want a failure", o.v)
		}
		if o.v != a.Code {
			return "value", fmt.Errorf("value %d; want %d", o.v, a.Code)
		}
		return "value", nil
	case errors.As(o.err, &te):
		switch {
		case a.Act == actError && !te.Panicked && te.Message == "chaos: an error":
		case a.Act == actPanic && te.Panicked && te.Message == "chaos: a panic":
		default:
			return "task error", fmt.Errorf("a task error (%v); want the outcome of %v", o.err, a.Act)
		}
		return "task error", nil
	case errors.As(o.err, &ce):
		if a.Act != actHang || !errors.Is(o.err, context.DeadlineExceeded) {
			return "cancelled", fmt.Errorf("cancelled (%v); want the outcome of %v", o.err, a.Act)
		}
		return "cancelled", nil
	case errors.As(o.err, &cd):
		var pe *procman.ProtocolError
		ok := false
		switch a.Act {
		case actExit, actExit0:
			ok = cd.ExitCode == a.Code && cd.Signal == 0 && cd.Err == nil
		case actSIGKILL:
			// When its exit is slow to be reported (under -race, on a
			// busy machine), the hangup wait may pass first and procman
			// sends its own SIGKILL: which one ended it cannot be told.
			ok = cd.Signal == syscall.SIGKILL && (cd.Err == nil || errors.Is(o.err, procman.ErrHungUp))
		case actSIGSEGV:
			// The Go runtime catches it, dumps the stacks and exits 2.
			ok = (cd.ExitCode == 2 || cd.Signal == syscall.SIGSEGV) && cd.Err == nil
		case actGarbage:
			ok = errors.As(o.err, &pe) && pe.Pid == cd.Pid
		case actHangUp:
			ok = errors.Is(o.err, procman.ErrHungUp) && cd.Signal == syscall.SIGKILL
		}
		if !ok {
			return "child death", fmt.Errorf("a child death (%v); want the outcome of %v", o.err, a.Act)
		}
		return "child death", nil
	}
	return "other", fmt.Errorf("unexpected error %v", o.err)
}
