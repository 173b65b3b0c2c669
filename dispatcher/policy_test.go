package dispatcher_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// embedding wraps a strategy by embedding it: what it does not say
// itself, the strategy it wraps says.
type embedding struct{ strategy.Strategy }

// ownLimit is a strategy of a user's own: the loop of docs/strategies.md,
// and a policy of its own.
type ownLimit struct {
	limit  int
	policy strategy.Policy
}

func (s ownLimit) Step(p strategy.Pool) {
	for p.Queued() > p.Idle() && p.Children() < s.limit {
		if p.Spawn() != nil {
			return
		}
	}
}

func (s ownLimit) Policy() strategy.Policy { return s.policy }

// A strategy that wraps another keeps the policy of the one it wraps:
// six tasks one after another under Throttled(2, Reuse(Unlimited)) run in one
// child, wrapped or not.
func TestWrappedStrategyKeepsItsPolicy(t *testing.T) {
	checkLeaks(t)
	d := start(t, embedding{strategy.Throttled(2, strategy.Reuse(strategy.Unlimited))})
	pids := taskPids(t, d, 6)
	require.Equal(t, []int{6}, childRuns(pids), "tasks per child, in order; pids %v", pids)
	shutdown(t, d, nil)
}

// A strategy of one's own whose policy asks for spares gets them, from
// the dispatcher, and the first task goes to one of them.
func TestOwnStrategyGetsItsSpares(t *testing.T) {
	checkLeaks(t)
	d := start(t, ownLimit{limit: 3, policy: strategy.Policy{Spares: 2}})
	var spares []int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		spares = liveChildrenOf(t, os.Getpid())
		if len(spares) == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no two spares in 20s: children %v; want the 2 of the policy", spares)
	}
	pid, err := getPid.Schedule(d, 0).Value()
	require.NoError(t, err)
	require.True(t, slices.Contains(spares, pid), "the task ran in child %d, not in a spare %v", pid, spares)
	shutdown(t, d, nil)
}

// The spares of a policy stay within the strategy's own limit: a strategy
// that allows one child gets one spare, not the two its policy asks for.
func TestSparesStayWithinTheStrategysLimit(t *testing.T) {
	checkLeaks(t)
	p := newProbe(ownLimit{limit: 1, policy: strategy.Policy{Spares: 2}})
	d := start(t, p)
	p.waitFor(t, "a spare", func(s poolState) bool { return s.Idle == 1 && s.Children == 1 })
	v, err := square.Schedule(d, 5).Value()
	require.NoError(t, err)
	require.Equal(t, 25, v)
	shutdown(t, d, nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, st := range p.seen {
		require.LessOrEqual(t, st.Children, 1, "Step %d saw %+v; want at most the strategy's 1 child", i, st)
	}
}

// A policy out of range is refused, whoever's strategy returns it.
func TestOwnStrategysBadPolicyIsRefused(t *testing.T) {
	for _, p := range []strategy.Policy{{Spares: -1}, {Reuse: -2}, {Pipeline: 65}, {Spread: 1}} {
		d, err := dispatcher.Start(ownLimit{limit: 1, policy: p})
		require.Error(t, err, "%+v", p)
		require.Nil(t, d)
		require.Contains(t, err.Error(), "dispatcher: refusing the strategy's policy: strategy: ")
	}
}
