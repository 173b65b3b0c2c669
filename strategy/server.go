package strategy

import (
	"errors"
	"fmt"
	"time"

	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// serverPool is the part of the dispatcher that server mode needs beyond
// Pool; the pool that a *dispatcher.Dispatcher hands to Step provides it.
type serverPool interface {
	Pool
	// SpawnCall starts a child for c alone and runs it there; c's future
	// resolves when the worker ends. It fails once the dispatcher shuts
	// down.
	SpawnCall(c *task.Call) error
	// Fail reports that the strategy gave up; the dispatcher's Err
	// returns err from then on.
	Fail(err error)
}

// RestartLimitError is the error of a server whose workers died more
// often than its restart limit allows (MaxRestarts): it stops restarting
// them, and the dispatcher reports it through its Err method.
type RestartLimitError struct {
	Worker   string        // the worker task's name
	Restarts int           // the restarts allowed ...
	Period   time.Duration // ... within this period
	Last     error         // how the last worker ended; nil if it returned nil
}

func (e *RestartLimitError) Error() string {
	s := fmt.Sprintf("strategy: server %q: workers ended more than %d times in %v; not restarting them", e.Worker, e.Restarts, e.Period)
	if e.Last != nil {
		s += ": the last: " + e.Last.Error()
	}
	return s
}

// Unwrap returns how the last worker ended.
func (e *RestartLimitError) Unwrap() error { return e.Last }

// ServerOption configures SpawnN.
type ServerOption interface{ applyServer(*server) }

type serverOptionFunc func(*server)

func (f serverOptionFunc) applyServer(s *server) { f(s) }

// MaxRestarts lets workers be restarted at most r times within any period
// p (OTP's supervisor intensity). Past it the server gives up: it restarts
// nothing more and reports a *RestartLimitError. The default is 10
// restarts in 1 minute.
func MaxRestarts(r int, p time.Duration) ServerOption {
	return serverOptionFunc(func(s *server) { s.maxRestarts, s.period = r, p })
}

// Backoff sets the pause before a slot's worker is restarted: base after
// its first quick death, doubling for each further one up to max. A worker
// that ran for at least max before it ended is not counted as quick, and
// its slot starts again from base. The defaults are 100 ms and 10 s.
func Backoff(base, max time.Duration) ServerOption {
	return serverOptionFunc(func(s *server) { s.backoffBase, s.backoffMax = base, max })
}

// CallOptions gives every worker's call the options opts, as
// task.Def.Schedule would: task.WithActivityTimeout kills and replaces a
// worker that sends no task.Heartbeat for that long (without it no worker
// is ever killed for being quiet), task.WithProcess sets up the workers'
// children, and task.WithTimeout and task.WithContext bound each worker's
// run (one that they stop ends as a worker that died). task.WithRetries
// does not apply: the server restarts its workers itself, and SpawnN
// refuses it.
func CallOptions(opts ...task.CallOption) ServerOption {
	return serverOptionFunc(func(s *server) { s.callOpts = append(s.callOpts, opts...) })
}

// SpawnN is server mode (the gem's Server#spawn_workers): it keeps n
// children alive, each running worker with arg until it returns or dies,
// and replaces each that ends, with a growing pause for a slot that keeps
// dying and a limit on restarts (MaxRestarts, Backoff). Workers learn of
// Shutdown through their context; the dispatcher waits its grace period
// for them and kills what is left. arg is encoded once, here, and every
// worker gets what it was then.
//
// It starts nothing for scheduled tasks: its RunsTasks method returns
// false, and the dispatcher fails them at once (use a second dispatcher
// for those). An arg that cannot be encoded, n below 1, or
// task.WithRetries among the call options, gives a strategy whose
// Validate method returns the error, so dispatcher.Start refuses it.
func SpawnN[A any](n int, worker *task.Def[A, struct{}], arg A, opts ...ServerOption) Strategy {
	s := &server{
		n:           n,
		maxRestarts: 10,
		period:      time.Minute,
		backoffBase: 100 * time.Millisecond,
		backoffMax:  10 * time.Second,
		now:         time.Now,
	}
	for _, o := range opts {
		o.applyServer(s)
	}
	if worker == nil {
		s.err = errors.New("strategy: SpawnN with a nil worker")
		return s
	}
	s.name = worker.Name()
	// Schedule once, on a scheduler that keeps the call: it encodes arg
	// as every start will need it, and applies the call options.
	var probe probe
	r := worker.Schedule(&probe, arg, s.callOpts...)
	if probe.call == nil {
		s.err = fmt.Errorf("strategy: SpawnN(%q): %w", s.name, r.Err())
		return s
	}
	if probe.call.Retries > 0 {
		s.err = fmt.Errorf("strategy: SpawnN(%q): task.WithRetries does not apply to workers; the server restarts them (MaxRestarts, Backoff)", s.name)
		return s
	}
	s.arg = probe.call.Arg
	s.raw = task.Raw(s.name)
	s.slots = make([]slot, max(n, 0))
	return s
}

// probe is a Scheduler that keeps the call it gets and fails it.
type probe struct{ call *task.Call }

func (p *probe) Submit(c *task.Call) {
	p.call = c
	c.Fail(errProbe)
}

var errProbe = errors.New("strategy: a probe; nothing runs")

// spawner is a Scheduler that starts each call as a worker of its own.
type spawner struct {
	pool serverPool
	err  error // SpawnCall's
}

func (s *spawner) Submit(c *task.Call) { s.err = s.pool.SpawnCall(c) }

type server struct {
	n           int
	name        string
	arg         []byte                    // the encoded argument of every worker
	raw         *task.Def[[]byte, []byte] // the worker, by name
	callOpts    []task.CallOption
	maxRestarts int
	period      time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	now         func() time.Time
	err         error // misconfigured

	slots    []slot
	restarts []time.Time // when restarts happened, within the last period
	gaveUp   error
}

// slot is one of the n places a worker runs in.
type slot struct {
	r       *result.Result[[]byte] // the running worker's future; nil when none runs
	started time.Time
	quick   int       // deaths in a row that came soon after a start
	nextAt  time.Time // do not restart before this
	ended   bool      // a worker ran here before (so the next start is a restart)
	last    error     // how the last worker here ended
}

// Validate reports a misconfigured server.
func (s *server) Validate() error {
	switch {
	case s.err != nil:
		return s.err
	case s.n < 1:
		return fmt.Errorf("strategy: SpawnN(%d): the number of workers must be at least 1", s.n)
	case s.maxRestarts < 0 || s.period <= 0:
		return fmt.Errorf("strategy: MaxRestarts(%d, %v): the count must not be negative and the period must be positive", s.maxRestarts, s.period)
	case s.backoffBase < 0 || s.backoffMax < s.backoffBase:
		return fmt.Errorf("strategy: Backoff(%v, %v): the base must not be negative, nor above the maximum", s.backoffBase, s.backoffMax)
	}
	return nil
}

func (s *server) String() string { return fmt.Sprintf("SpawnN(%d, %q)", s.n, s.name) }

// RunsTasks returns false: the children of a server run its workers
// only. The dispatcher fails a task scheduled on it at once, with
// dispatcher.ErrNoTasks, rather than queue it for ever.
func (s *server) RunsTasks() bool { return false }

// Policy returns the zero Policy: each worker has a child of its own,
// which serves it alone.
func (s *server) Policy() Policy { return Policy{} }

// Step notes the workers that ended, and starts workers in empty slots
// whose pause is over, as long as the restart limit allows.
func (s *server) Step(p Pool) {
	sp, ok := p.(serverPool)
	if !ok || s.Validate() != nil || s.gaveUp != nil {
		return
	}
	now := s.now()
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.r != nil && sl.r.Ready() {
			s.ended(sl, now)
			// Give up as soon as the death that breaks the limit
			// happens, not when the slot's pause is over.
			if s.exhausted(now) {
				s.giveUp(sp, sl)
				return
			}
		}
		if sl.r != nil {
			continue
		}
		if now.Before(sl.nextAt) {
			p.After(sl.nextAt.Sub(now))
			continue
		}
		if sl.ended && !s.allowRestart(sp, now, sl) {
			return
		}
		sw := spawner{pool: sp}
		r := s.raw.Schedule(&sw, s.arg, s.callOpts...)
		if err := sw.err; err != nil {
			// Counted like a worker that died at once.
			sl.ended = true
			sl.quick++
			sl.nextAt = now.Add(s.backoff(sl.quick))
			p.After(sl.nextAt.Sub(now))
			continue
		}
		sl.r, sl.started = r, now
	}
}

// ended records the end of a slot's worker and sets its pause.
func (s *server) ended(sl *slot, now time.Time) {
	sl.ended = true
	if now.Sub(sl.started) < s.backoffMax {
		sl.quick++
	} else {
		sl.quick = 0
	}
	sl.nextAt = now.Add(s.backoff(sl.quick))
	sl.last = sl.r.Err()
	sl.r = nil
}

// backoff is the pause after the k-th quick death in a row.
func (s *server) backoff(k int) time.Duration {
	if k <= 0 {
		return 0
	}
	d := s.backoffBase
	for i := 1; i < k && d < s.backoffMax; i++ {
		d *= 2
	}
	return min(d, s.backoffMax)
}

// exhausted reports whether the restarts within the last period have
// reached the limit, forgetting the older ones.
func (s *server) exhausted(now time.Time) bool {
	kept := s.restarts[:0]
	for _, t := range s.restarts {
		if now.Sub(t) < s.period {
			kept = append(kept, t)
		}
	}
	s.restarts = kept
	return len(s.restarts) >= s.maxRestarts
}

func (s *server) giveUp(sp serverPool, sl *slot) {
	s.gaveUp = &RestartLimitError{Worker: s.name, Restarts: s.maxRestarts, Period: s.period, Last: sl.last}
	sp.Fail(s.gaveUp)
}

// allowRestart counts a restart against the limit, or gives up.
func (s *server) allowRestart(sp serverPool, now time.Time, sl *slot) bool {
	if s.exhausted(now) {
		s.giveUp(sp, sl)
		return false
	}
	s.restarts = append(s.restarts, now)
	return true
}
