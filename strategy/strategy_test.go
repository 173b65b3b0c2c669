package strategy

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakePool is a Pool that counts. Spawn starts a child that takes a queued
// task, or becomes idle if none is queued.
type fakePool struct {
	queued   int
	children int
	idle     int

	spawns    int           // successful Spawn calls
	calls     int           // all Spawn calls
	failAt    int           // the Spawn call (1-based) that fails, and every later one; 0: none
	noDrain   bool          // a buggy pool: Spawn does not take a queued task
	after     time.Duration // the earliest After request; 0: none
	afterUsed bool
}

var errSpawn = errors.New("fake: cannot start a child")

func (p *fakePool) Queued() int   { return p.queued }
func (p *fakePool) Children() int { return p.children }
func (p *fakePool) Idle() int     { return p.idle }

func (p *fakePool) Spawn() error {
	p.calls++
	if p.failAt > 0 && p.calls >= p.failAt {
		return errSpawn
	}
	p.spawns++
	p.children++
	switch {
	case p.noDrain:
	case p.queued > 0:
		p.queued--
	default:
		p.idle++
	}
	return nil
}

func (p *fakePool) After(d time.Duration) {
	if !p.afterUsed || d < p.after {
		p.after = d
	}
	p.afterUsed = true
}

// exit makes n busy children exit.
func (p *fakePool) exit(t *testing.T, n int) {
	t.Helper()
	require.LessOrEqual(t, n, p.children-p.idle, "exit(%d) with %d busy children", n, p.children-p.idle)
	p.children -= n
}

func TestSimpleSpawnsOnePerQueued(t *testing.T) {
	for _, queued := range []int{0, 1, 7, 100} {
		t.Run(fmt.Sprintf("%d queued", queued), func(t *testing.T) {
			p := &fakePool{queued: queued}
			Simple().Step(p)
			require.Equal(t, queued, p.spawns, "spawns with %d queued", queued)
			require.Zero(t, p.queued, "tasks left queued")
			require.Zero(t, p.idle, "idle children")
			require.False(t, p.afterUsed, "Simple called After")
		})
	}
}

func TestThrottledKeepsToItsLimit(t *testing.T) {
	s := Throttled(4)
	p := &fakePool{queued: 8}

	s.Step(p)
	require.Equal(t, 4, p.spawns, "spawns after the first Step with 8 queued")
	require.Equal(t, 4, p.children)
	require.Equal(t, 4, p.queued)

	s.Step(p) // nothing changed
	require.Equal(t, 4, p.spawns, "spawns after a Step with no change")

	p.exit(t, 2)
	s.Step(p)
	require.Equal(t, 6, p.spawns, "spawns after two children exited")
	require.Equal(t, 4, p.children)
	require.Equal(t, 2, p.queued)

	p.exit(t, 4)
	s.Step(p)
	require.Equal(t, 8, p.spawns, "spawns after all children exited")
	require.Equal(t, 2, p.children, "children: only as many as there were tasks")
	require.Zero(t, p.queued)
	require.Zero(t, p.idle)
}

func TestStepStartsNothingWithoutWork(t *testing.T) {
	for _, s := range []Strategy{Simple(), Throttled(3), Default()} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			p := &fakePool{}
			s.Step(p)
			require.Zero(t, p.calls, "Spawn calls with nothing queued")
		})
	}
}

func TestStepLeavesTasksToIdleChildren(t *testing.T) {
	for _, s := range []Strategy{Simple(), Throttled(10)} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			p := &fakePool{queued: 5, children: 2, idle: 2}
			s.Step(p)
			require.Equal(t, 3, p.spawns, "spawns with 5 queued and 2 idle children")
		})
	}
}

func TestAnInvalidThrottleIsRefusedAndSpawnsNothing(t *testing.T) {
	tests := []struct {
		name string
		s    Strategy
		want []string
	}{
		{"Throttled(0)", Throttled(0), []string{"strategy: ", "Throttled(0)", "at least 1"}},
		{"Throttled(-1)", Throttled(-1), []string{"strategy: ", "Throttled(-1)", "at least 1"}},
		{"DefaultWithFactor(0)", DefaultWithFactor(0), []string{"strategy: ", "(0)", "at least 1"}},
		{"DefaultWithFactor(-2)", DefaultWithFactor(-2), []string{"strategy: ", "(-2)", "at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := tt.s.(interface{ Validate() error })
			require.True(t, ok, "%s has no Validate method", tt.name)
			err := v.Validate()
			require.Error(t, err, "%s.Validate() = nil; want an error", tt.name)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}

			p := &fakePool{queued: 3}
			tt.s.Step(p)
			require.Zero(t, p.calls, "Spawn calls by the invalid %s", tt.name)
		})
	}
}

func TestValidStrategiesPassValidate(t *testing.T) {
	for _, s := range []Strategy{Throttled(1), Throttled(3), Default(), DefaultWithFactor(1), Simple(), Simple(Reuse(Unlimited), Spares(2)), Throttled(2, Reuse(100), MaxAge(time.Minute), MaxRSS(1<<30), Spread(0.1))} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			require.NoError(t, s.(interface{ Validate() error }).Validate())
		})
	}
}

func TestDefaultKeepsToTheCPUsTimesItsFactor(t *testing.T) {
	cpus := runtime.NumCPU()
	tests := []struct {
		name string
		s    Strategy
		want int
	}{
		{"Default", Default(), cpus * 3},
		{"DefaultWithFactor(1)", DefaultWithFactor(1), cpus},
		{"DefaultWithFactor(5)", DefaultWithFactor(5), cpus * 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakePool{queued: cpus*5 + 1}
			tt.s.Step(p)
			require.Equal(t, tt.want, p.spawns, "children started by %s with %d queued", tt.name, cpus*5+1)
		})
	}
}

func TestDefaultWithHugeFactorDoesNotOverflow(t *testing.T) {
	s := DefaultWithFactor(int(^uint(0) >> 1))
	require.NoError(t, s.(interface{ Validate() error }).Validate())
	p := &fakePool{queued: 7}
	s.Step(p)
	require.Equal(t, 7, p.spawns, "children started by DefaultWithFactor(MaxInt) with 7 queued")
}

func TestStrategiesNameThemselvesWithTheirLimit(t *testing.T) {
	cpus := runtime.NumCPU()
	tests := []struct {
		s    Strategy
		want string
	}{
		{Simple(), "Simple"},
		{Throttled(4), "Throttled(4)"},
		{Throttled(0), "Throttled(0)"},
		{Default(), "Default(" + strconv.Itoa(cpus) + " cpus × 3 = " + strconv.Itoa(cpus*3) + ")"},
		{DefaultWithFactor(2), "Default(" + strconv.Itoa(cpus) + " cpus × 2 = " + strconv.Itoa(cpus*2) + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			s, ok := tt.s.(interface{ String() string })
			require.True(t, ok, "%T has no String method", tt.s)
			require.Equal(t, tt.want, s.String())
		})
	}
}

func TestSpawnErrorStopsTheStep(t *testing.T) {
	for _, s := range []Strategy{Simple(), Throttled(10)} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			p := &fakePool{queued: 6, failAt: 3}
			s.Step(p)
			require.Equal(t, 3, p.calls, "Spawn calls when the third fails")
			require.Equal(t, 2, p.spawns)
			require.Equal(t, 4, p.queued)

			p.failAt = 0 // the next Step tries again
			s.Step(p)
			require.Equal(t, 6, p.spawns, "spawns after a Step where Spawn works again")
		})
	}
}

func TestBuggyPoolDoesNotLoopForever(t *testing.T) {
	for _, s := range []Strategy{Simple(), Throttled(1000)} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			p := &fakePool{queued: 5, noDrain: true}
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.Step(p)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Step did not return with a Pool whose Spawn does not take a task")
			}
			require.Equal(t, 5, p.calls, "Spawn calls with 5 queued that never drain")
		})
	}
}
