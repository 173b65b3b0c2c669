package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// ErrClosed is the error of a task that never started because its
// dispatcher was shut down or closed, and of Schedule after Shutdown.
var ErrClosed = errors.New("dispatcher: closed; the task was not started")

// ErrKilled is the cause (in a *result.ChildDeath) of a task whose child
// was killed by Close, or by Shutdown when its context ended.
var ErrKilled = errors.New("dispatcher: closed while the task ran; its child was killed")

// Option configures a Dispatcher.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	logger hclog.Logger
	grace  time.Duration
	pm     []procman.Option
}

// WithLogger sends the dispatcher's log, and its process manager's, to l.
// The default is silent.
func WithLogger(l hclog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithGracePeriod sets how long Close waits after SIGTERM before it sends
// SIGKILL to children that are still running. The default is 5 seconds.
func WithGracePeriod(d time.Duration) Option {
	return optionFunc(func(c *config) { c.grace = d })
}

// WithProcmanOptions passes options to the dispatcher's process manager
// (procman.WithExecutable, procman.WithMaxPayload, ...).
func WithProcmanOptions(opts ...procman.Option) Option {
	return optionFunc(func(c *config) { c.pm = append(c.pm, opts...) })
}

// Dispatcher runs tasks in child processes, starting children when its
// strategy says. Get one from Start. Its methods are safe for concurrent
// use. One goroutine of its own owns its state; Submit, Join, Shutdown and
// Close talk to it through a queue and a wakeup.
type Dispatcher struct {
	strat strategy.Strategy
	log   hclog.Logger
	grace time.Duration
	pm    *procman.Manager

	mu      sync.Mutex
	inbox   []any // *task.Call, *joinReq, stopReq
	closing bool  // takes no more work
	seq     uint64
	done    chan struct{} // closed when the manager goroutine has ended

	// Owned by the manager goroutine.
	pending    []*job
	idle       []*child
	unresolved int
	joins      []*joinReq
	stop       stopMode
	killAt     time.Time // Close: when SIGKILL follows SIGTERM
	killed     bool
	wakeAt     time.Time // asked for by the strategy
	termSent   bool
}

type job struct {
	call *task.Call
	seq  uint64
}

type joinReq struct {
	bound uint64 // jobs with seq <= bound count
	left  int
	done  chan struct{}
}

type stopMode int

const (
	running  stopMode = iota
	draining          // Shutdown: finish the work, then end
	killing           // Close: kill, fail the queue, then end
)

type stopReq struct{ mode stopMode }

// child is one child process of the dispatcher.
type child struct {
	d   *Dispatcher
	p   *procman.Process
	job *job // in flight, or nil
}

// Start starts a dispatcher that runs its manager goroutine until Shutdown
// or Close. The strategy decides when children start; a strategy that is
// misconfigured (strategy.Throttled(0)) or nil is refused with an error.
func Start(s strategy.Strategy, opts ...Option) (*Dispatcher, error) {
	if s == nil {
		return nil, errors.New("dispatcher: Start with a nil strategy (use strategy.Default())")
	}
	if v, ok := s.(strategy.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("dispatcher: refusing the strategy: %w", err)
		}
	}
	cfg := config{grace: 5 * time.Second}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = hclog.NewNullLogger()
	}
	d := &Dispatcher{
		strat: s,
		log:   cfg.logger,
		grace: cfg.grace,
		done:  make(chan struct{}),
	}
	pmOpts := append([]procman.Option{
		procman.WithLogger(cfg.logger.Named("procman")),
		procman.WithPdeathsig(syscall.SIGKILL),
	}, cfg.pm...)
	d.pm = procman.New(pmOpts...)
	started := make(chan error, 1)
	go d.run(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return d, nil
}

// Submit queues c; it is how task.Def.Schedule reaches the dispatcher. It
// never waits for a child. After Shutdown or Close it resolves c with
// ErrClosed at once.
func (d *Dispatcher) Submit(c *task.Call) {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		c.Resolver.Fail(ErrClosed)
		return
	}
	d.seq++
	d.inbox = append(d.inbox, &job{call: c, seq: d.seq})
	d.mu.Unlock()
	d.wakeup()
}

func (d *Dispatcher) wakeup() {
	if err := d.pm.Wakeup(); err != nil && !errors.Is(err, procman.ErrTornDown) {
		d.log.Error("waking the manager goroutine", "error", err)
	}
}

// Join waits until every task scheduled before it was called has resolved.
func (d *Dispatcher) Join() {
	_ = d.JoinContext(context.Background())
}

// JoinContext is Join that gives up when ctx ends, returning ctx.Err().
func (d *Dispatcher) JoinContext(ctx context.Context) error {
	d.mu.Lock()
	if d.closed() {
		d.mu.Unlock()
		return nil // everything was resolved when the manager ended
	}
	j := &joinReq{bound: d.seq, done: make(chan struct{})}
	d.inbox = append(d.inbox, j)
	d.mu.Unlock()
	d.wakeup()
	select {
	case <-j.done:
		return nil
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Dispatcher) closed() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Shutdown takes no more work, lets the queued and running tasks finish,
// and ends the dispatcher. When ctx ends first it goes on as Close and
// returns ctx.Err() once everything is cleaned up. After it returns no
// child, zombie, fd or goroutine of the dispatcher is left.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.request(draining)
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		if d.closed() {
			// Both were ready and select chose ctx: the work was done,
			// nothing was cut short.
			return nil
		}
	}
	d.request(killing)
	<-d.done
	return ctx.Err()
}

// Close takes no more work, resolves every queued task with ErrClosed,
// sends SIGTERM to the running children and SIGKILL after the grace period
// (WithGracePeriod), and returns when everything is cleaned up. A task
// whose child was killed resolves with a *result.ChildDeath whose cause is
// ErrKilled. Calling Close again does nothing.
func (d *Dispatcher) Close() error {
	d.request(killing)
	<-d.done
	return nil
}

func (d *Dispatcher) request(m stopMode) {
	d.mu.Lock()
	d.closing = true
	if !d.closed() {
		d.inbox = append(d.inbox, stopReq{mode: m})
	}
	d.mu.Unlock()
	d.wakeup()
}

// Done returns a channel that is closed when the dispatcher has ended.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }

// run is the manager goroutine.
func (d *Dispatcher) run(started chan<- error) {
	// Children are started on this thread only, and the thread ends with
	// the goroutine: that makes Pdeathsig safe (see procman.WithPdeathsig).
	runtime.LockOSThread()
	if err := d.pm.Setup(); err != nil {
		close(d.done)
		started <- fmt.Errorf("dispatcher: %w", err)
		return
	}
	started <- nil
	defer close(d.done)
	defer d.finish()
	pool := poolView{d}
	for {
		d.intake()
		d.assign()
		// A draining dispatcher asks its strategy only while work is
		// queued: with none, all the strategy could start is spares, which
		// would be retired at once, and the next Step would start them
		// again, for ever.
		d.wakeAt = time.Time{}
		if d.stop == running || (d.stop == draining && len(d.pending) > 0) {
			d.strat.Step(pool)
			d.assign()
		}
		if d.stop == draining && len(d.pending) == 0 {
			d.retireIdle()
		}
		if d.stop == killing {
			d.kill()
		}
		if d.stop != running && len(d.pending) == 0 && d.pm.ProcessCount() == 0 {
			return
		}
		d.pm.SetDeadline(d.nextDeadline())
		if err := d.pm.Step(); err != nil {
			d.log.Error("process manager step failed; closing", "error", err)
			d.mu.Lock()
			d.closing = true
			d.mu.Unlock()
			d.stop = killing
			_ = d.pm.Teardown()
		}
	}
}

// nextDeadline is when the manager goroutine must wake even if nothing
// happens: the Step its strategy asked for, or, once it is killing, the end
// of the grace period. A killing dispatcher calls its strategy no more, so
// the strategy's last After is void: were it kept, it would pass during the
// grace period, and every wait after it would return at once.
func (d *Dispatcher) nextDeadline() time.Time {
	if d.stop == killing {
		if d.killed {
			return time.Time{}
		}
		return d.killAt
	}
	return d.wakeAt
}

// intake moves what other goroutines queued into the manager's state.
func (d *Dispatcher) intake() {
	d.mu.Lock()
	inbox := d.inbox
	d.inbox = nil
	d.mu.Unlock()
	for _, x := range inbox {
		switch x := x.(type) {
		case *job:
			d.pending = append(d.pending, x)
			d.unresolved++
		case *joinReq:
			x.left = d.unresolved
			if x.left == 0 {
				close(x.done)
			} else {
				d.joins = append(d.joins, x)
			}
		case stopReq:
			if x.mode > d.stop {
				d.stop = x.mode
				if x.mode == killing {
					d.killAt = time.Now().Add(d.grace)
				}
			}
		}
	}
}

// assign hands queued jobs to idle children.
func (d *Dispatcher) assign() {
	for len(d.pending) > 0 && len(d.idle) > 0 {
		c := d.idle[len(d.idle)-1]
		d.idle = d.idle[:len(d.idle)-1]
		j := d.pending[0]
		d.pending = d.pending[1:]
		c.give(j)
	}
}

// retireIdle tells idle children there is no more work.
func (d *Dispatcher) retireIdle() {
	for _, c := range d.idle {
		c.p.CloseInput()
	}
	d.idle = nil
}

// kill fails the queue and ends the children: SIGTERM first, SIGKILL when
// the grace period is over.
func (d *Dispatcher) kill() {
	for _, j := range d.pending {
		d.resolve(j, nil, ErrClosed)
	}
	d.pending = nil
	d.retireIdle()
	if !d.termSent {
		d.termSent = true
		_ = d.pm.KillProcesses(syscall.SIGTERM)
	}
	if !d.killed && !time.Now().Before(d.killAt) {
		d.killed = true
		_ = d.pm.KillProcesses(syscall.SIGKILL)
	}
}

// finish runs when the manager goroutine ends.
func (d *Dispatcher) finish() {
	if err := d.pm.Teardown(); err != nil {
		d.log.Error("tearing down the process manager", "error", err)
	}
	d.mu.Lock()
	inbox := d.inbox
	d.inbox = nil
	d.mu.Unlock()
	for _, x := range inbox {
		if j, ok := x.(*job); ok {
			j.call.Resolver.Fail(ErrClosed)
		}
	}
	for _, j := range d.pending {
		j.call.Resolver.Fail(ErrClosed)
	}
	d.pending = nil
	for _, jr := range d.joins {
		close(jr.done)
	}
	d.joins = nil
}

// resolve settles a job with an answer or an error, and counts it for Join.
func (d *Dispatcher) resolve(j *job, payload []byte, err error) {
	if err != nil {
		j.call.Resolver.Fail(err)
	} else {
		j.call.Resolver.Resolve(payload)
	}
	d.unresolved--
	if len(d.joins) == 0 {
		return
	}
	kept := d.joins[:0]
	for _, jr := range d.joins {
		if j.seq <= jr.bound {
			jr.left--
		}
		if jr.left == 0 {
			close(jr.done)
		} else {
			kept = append(kept, jr)
		}
	}
	d.joins = kept
}

// spawn starts one child; it takes the first queued job, or waits idle.
func (d *Dispatcher) spawn() error {
	if d.stop != running && len(d.pending) == 0 {
		// No spares once Shutdown was called: they would only be
		// retired (see run).
		return ErrClosed
	}
	c := &child{d: d}
	var spec procman.Spec
	var j *job
	if len(d.pending) > 0 {
		j = d.pending[0]
		spec.Name = j.call.Task
		spec.Invocation = d.invocation(j)
	}
	p, err := d.pm.CreateProcess(spec, c)
	if err != nil {
		d.log.Error("starting a child", "error", err)
		if j != nil {
			// Fail the job rather than retry forever: a binary that
			// cannot start will not start the next time either.
			d.pending = d.pending[1:]
			d.resolve(j, nil, fmt.Errorf("dispatcher: task %q: %w", j.call.Task, err))
		}
		return err
	}
	c.p = p
	if j != nil {
		d.pending = d.pending[1:]
		c.job = j
	} else {
		d.idle = append(d.idle, c)
	}
	return nil
}

func (d *Dispatcher) invocation(j *job) []byte {
	return wire.AppendInvocation(nil, &wire.Invocation{Task: j.call.Task, Arg: j.call.Arg, Last: true})
}

// give sends j to an idle child.
func (c *child) give(j *job) {
	c.job = j
	if err := c.p.Send(wire.KindInvocation, c.d.invocation(j)); err != nil {
		// The child is gone or going; its exit resolves the job.
		c.d.log.Debug("sending an invocation failed", "pid", c.p.Pid(), "error", err)
	}
}

// Message implements procman.Handler.
func (c *child) Message(p *procman.Process, k wire.Kind, payload []byte) {
	d := c.d
	switch k {
	case wire.KindAnswer, wire.KindTaskFailed:
		j := c.job
		if j == nil {
			d.log.Warn("protocol error: a child answered with no task in flight; ignored", "pid", p.Pid(), "kind", k.String())
			return
		}
		c.job = nil
		if k == wire.KindAnswer {
			d.resolve(j, payload, nil)
			return
		}
		f, err := wire.DecodeFailure(payload)
		if err != nil {
			d.resolve(j, nil, &result.TaskError{Task: j.call.Task, Pid: p.Pid(), Message: fmt.Sprintf("the child's failure report does not decode: %v", err)})
			return
		}
		d.resolve(j, nil, &result.TaskError{Task: j.call.Task, Pid: p.Pid(), Message: f.Message, Panicked: f.Panicked, Stack: f.Stack})
	default:
		// Heartbeats and progress have no reader yet.
	}
}

// Exited implements procman.Handler.
func (c *child) Exited(p *procman.Process, e *procman.Exit) {
	d := c.d
	for i, x := range d.idle {
		if x == c {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			break
		}
	}
	if c.job == nil {
		return
	}
	j := c.job
	c.job = nil
	cause := e.Err
	if cause == nil && d.stop == killing {
		cause = ErrKilled
	}
	d.resolve(j, nil, &result.ChildDeath{
		Task:     j.call.Task,
		Pid:      e.Pid,
		ExitCode: e.ExitCode,
		Signal:   e.Signal,
		Duration: e.Duration,
		Err:      cause,
	})
}

// poolView is the dispatcher as its strategy sees it.
type poolView struct{ d *Dispatcher }

func (v poolView) Queued() int   { return len(v.d.pending) }
func (v poolView) Children() int { return v.d.pm.ProcessCount() }
func (v poolView) Idle() int     { return len(v.d.idle) }
func (v poolView) Spawn() error  { return v.d.spawn() }
func (v poolView) After(dur time.Duration) {
	t := time.Now().Add(dur)
	if v.d.wakeAt.IsZero() || t.Before(v.d.wakeAt) {
		v.d.wakeAt = t
	}
}
