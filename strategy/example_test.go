package strategy_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/procrastinate-go/procrastinate/strategy"
)

// pool is a stand-in for the dispatcher: a child it starts takes a queued
// task at once and stays alive until exit is called.
type pool struct {
	queued, children int
	after            time.Duration // the earliest After request of the last Step; 0 for none
}

func (p *pool) Queued() int   { return p.queued }
func (p *pool) Children() int { return p.children }
func (p *pool) Idle() int     { return 0 }

func (p *pool) Spawn() error {
	p.children++
	p.queued--
	return nil
}

func (p *pool) After(d time.Duration) {
	if p.after == 0 || d < p.after {
		p.after = d
	}
}

// step runs one Step of s and reports what it did.
func (p *pool) step(s strategy.Strategy) {
	before := p.children
	p.after = 0
	s.Step(p)
	fmt.Printf("started %d, %d alive, %d queued", p.children-before, p.children, p.queued)
	if p.after > 0 {
		fmt.Printf(", ask again in %v", p.after)
	}
	fmt.Println()
}

func ExampleThrottled() {
	s := strategy.Throttled(2)
	p := &pool{queued: 5}

	p.step(s)
	p.children-- // one child exited
	p.step(s)

	fmt.Println(s)
	// Output:
	// started 2, 2 alive, 3 queued
	// started 1, 2 alive, 2 queued
	// Throttled(2)
}

func ExampleThrottled_invalid() {
	s := strategy.Throttled(0)
	if v, ok := s.(interface{ Validate() error }); ok {
		fmt.Println(v.Validate())
	}
	// Output:
	// strategy: Throttled(0): the limit must be at least 1
}

func ExampleSimple() {
	p := &pool{queued: 5}
	p.step(strategy.Simple())
	// Output:
	// started 5, 5 alive, 0 queued
}

// rateLimited starts at most perSecond children in any second.
type rateLimited struct {
	perSecond int
	now       func() time.Time // time.Now, or a fake clock in tests
	starts    []time.Time      // the starts of the last second, oldest first
}

func (r *rateLimited) Step(p strategy.Pool) {
	now := r.now()
	for len(r.starts) > 0 && now.Sub(r.starts[0]) >= time.Second {
		r.starts = r.starts[1:]
	}
	for p.Queued() > 0 {
		if len(r.starts) >= r.perSecond {
			p.After(r.starts[0].Add(time.Second).Sub(now)) // when the oldest start leaves the window
			return
		}
		if err := p.Spawn(); err != nil {
			return
		}
		r.starts = append(r.starts, now)
	}
}

// Policy returns the zero Policy: a fresh process for every task.
func (r *rateLimited) Policy() strategy.Policy { return strategy.Policy{} }

// Validate refuses a rate that would start nothing.
func (r *rateLimited) Validate() error {
	if r.perSecond < 1 {
		return fmt.Errorf("rateLimited(%d): the rate must be at least 1", r.perSecond)
	}
	return nil
}

// A strategy of your own: at most two starts per second, however many
// tasks are queued. It keeps the times of its recent starts and, when the
// second is used up, asks to be called again when the next start is due.
// The clock is a field so that a test (and this example) can drive it.
func ExampleStrategy_rateLimited() {
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := &rateLimited{perSecond: 2, now: func() time.Time { return clock }}
	p := &pool{queued: 5}

	p.step(s)
	clock = clock.Add(400 * time.Millisecond) // a child exits early: the dispatcher calls Step
	p.children--
	p.step(s)
	clock = clock.Add(600 * time.Millisecond) // the timer asked for fires
	p.step(s)
	clock = clock.Add(time.Second)
	p.step(s)
	// Output:
	// started 2, 2 alive, 3 queued, ask again in 1s
	// started 0, 1 alive, 3 queued, ask again in 600ms
	// started 2, 3 alive, 1 queued, ask again in 1s
	// started 1, 4 alive, 0 queued
}

// loadBound starts nothing while the machine is busier than a bound, and
// leaves the rest to another strategy.
type loadBound struct {
	max  float64
	load func() (float64, error) // loadAvg, or a fake in tests
	next strategy.Strategy
}

// newLoadBound returns a loadBound that reads /proc/loadavg.
func newLoadBound(bound float64, next strategy.Strategy) *loadBound {
	return &loadBound{max: bound, load: loadAvg, next: next}
}

// Policy returns the policy of the strategy it wraps, so that its children
// are used as that strategy's would be.
func (b *loadBound) Policy() strategy.Policy { return b.next.Policy() }

func (b *loadBound) Step(p strategy.Pool) {
	if p.Queued() == 0 {
		return
	}
	if l, err := b.load(); err != nil || l > b.max {
		p.After(time.Second) // nothing in the pool will change the load: look again later
		return
	}
	b.next.Step(p)
}

// loadAvg reads the 1-minute load average from /proc/loadavg (Linux).
func loadAvg() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	first, _, ok := strings.Cut(string(b), " ")
	if !ok {
		return 0, errors.New("loadavg: unexpected format")
	}
	return strconv.ParseFloat(first, 64)
}

// A strategy that waits for the machine: it starts nothing while the
// 1-minute load average is above 4, asks to be called again a second
// later, and otherwise starts children as Throttled(3) would.
func Example_loadAverage() {
	s := newLoadBound(4, strategy.Throttled(3))

	readings := []float64{6.5, 4.2, 1.0}
	s.load = func() (float64, error) { // the example's readings, in place of /proc/loadavg
		l := readings[0]
		readings = readings[1:]
		return l, nil
	}
	p := &pool{queued: 5}
	for range 3 {
		p.step(s)
	}
	// Output:
	// started 0, 0 alive, 5 queued, ask again in 1s
	// started 0, 0 alive, 5 queued, ask again in 1s
	// started 3, 3 alive, 2 queued
}
