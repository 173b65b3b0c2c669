package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/childenv"
	"github.com/procrastinate-go/procrastinate/internal/sentinel"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// ErrClosed is the error of a task that never started because its
// dispatcher was shut down or closed, and of Schedule after Shutdown.
var ErrClosed = sentinel.New("dispatcher.ErrClosed", "dispatcher: closed; the task was not started")

// ErrNoTasks is the error of a task scheduled on a dispatcher whose
// strategy runs no scheduled tasks (server mode, strategy.SpawnN).
var ErrNoTasks = sentinel.New("dispatcher.ErrNoTasks", "dispatcher: its strategy runs no scheduled tasks (server mode); schedule them on a dispatcher of their own")

// ErrStalled is the error of a task still queued when a dispatcher that is
// shutting down has no child left and its strategy will start none: it
// wraps ErrClosed.
var ErrStalled = sentinel.Wrap("dispatcher.ErrStalled", ErrClosed, "the strategy started no child for it")

// ErrInactive is the cause (in a *result.ChildDeath) of a task whose child
// was killed because it sent no heartbeat within its activity timeout.
var ErrInactive = sentinel.New("dispatcher.ErrInactive", "dispatcher: the task sent no heartbeat within its activity timeout; its child was killed")

// ErrKilled is the cause (in a *result.ChildDeath) of a task whose child
// was killed by Close, or by Shutdown when its context ended.
var ErrKilled = sentinel.New("dispatcher.ErrKilled", "dispatcher: closed while the task ran; its child was killed")

// Option configures a Dispatcher.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	logger     procman.Logger
	grace      time.Duration
	termSig    syscall.Signal
	stderr     io.Writer
	stderrTail int
	startRetry time.Duration
	pm         []procman.Option
}

// WithLogger sends the dispatcher's log, and its process manager's, to l:
// an hclog.Logger or a *slog.Logger, say (see procman.Logger). The
// default is silent. l is called on the dispatcher's own goroutine: it
// should not block.
func WithLogger(l procman.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithGracePeriod sets how long the termination sequence waits after its
// first step (a stop frame, or SIGTERM; see Close and task.WithContext)
// before it sends SIGKILL to a child that is still running: when Close
// ends the children, and when a task's context or timeout ends. The
// default is 5 seconds.
func WithGracePeriod(d time.Duration) Option {
	return optionFunc(func(c *config) { c.grace = d })
}

// WithStderr sends what children write to their stderr to w instead of
// to the parent's stderr; nil discards it. Either way its tail is kept
// for *result.ChildDeath (see WithStderrTail).
//
// Each line is passed on whole, as the child ends it, with a prefix that
// names the child, "[task pid] ": the task it runs, or last ran, when the
// line is read, and its pid. No line is cut by another child's; a line
// longer than 8 KiB goes in pieces, each a line of its own, and a last
// line without a newline goes when the child ends.
//
// w is written by a goroutine of the dispatcher's own, never by the one
// that runs the children, so a w that blocks holds up nothing else. Lines
// wait for it in a queue of 256 KiB; what does not fit is dropped, and
// counted (see StderrDropped): the log says so, and so does the stream,
// in a line "procrastinate: N bytes of children's stderr dropped: ...",
// once w takes lines again. Shutdown and Close wait up to a second for w
// to take what is queued, then drop the rest; a w with SetWriteDeadline
// (an *os.File pipe, a net.Conn) has its write in progress cut short with
// a deadline, and its deadline cleared after. An *os.File that is a pipe
// or a terminal without deadlines (the parent's own stderr, as a rule) is
// written through a non-blocking copy of it, opened anew, so that its
// writes can be cut short too. Any other w that blocks keeps the
// dispatcher's writer goroutine in its Write until that returns.
func WithStderr(w io.Writer) Option {
	return optionFunc(func(c *config) { c.stderr = w })
}

// WithStderrTail sets how much of the end of a child's stderr is kept for
// *result.ChildDeath.Stderr, as the child wrote it: 64 KiB by default.
// The cause of a crash (ChildDeath.Cause) is found in all of it, also
// where the tail is too short to hold it. 0 turns the capture off:
// children then write straight to the parent's stderr, without a prefix,
// WithStderr has no effect, and ChildDeath's Stderr, Cause and Stack stay
// empty.
func WithStderrTail(n int) Option {
	return optionFunc(func(c *config) { c.stderrTail = n })
}

// WithTermSignal sets the first signal of the termination sequence (the
// default is SIGTERM; Start refuses a number outside 1 to 64); SIGKILL
// follows after the grace period. A child turns it into the end of its
// task's context. It catches it from the start only for a call that the
// dispatcher may cancel (task.WithContext, task.WithTimeout,
// task.WithActivityTimeout) and for a server-mode worker, so that another
// child keeps the signal's default (someone else's SIGTERM kills it);
// other children catch it when Close asks them to stop (see Close).
func WithTermSignal(sig syscall.Signal) Option {
	return optionFunc(func(c *config) { c.termSig = sig })
}

// WithStartRetry sets how long the dispatcher goes on trying to start a
// task's child while the system refuses it for a reason that passes: no
// process or thread left (EAGAIN: a full pids cgroup, RLIMIT_NPROC), no fd
// left (EMFILE, ENFILE), no memory (ENOMEM), and a child whose Go runtime
// died for want of a thread before it read its task (seen in its stderr,
// so not with WithStderrTail(0)). Meanwhile the task stays queued, starts
// pause for a while that doubles from 10 ms to 1 s, and the dispatcher
// keeps a quarter fewer children alive than it had at the refusal, growing
// back by one for each round of starts that succeeds. A task whose start
// is still refused d after its first refusal fails with an error wrapping
// the *procman.StartError (or the *result.ChildDeath), and so does every
// task refused after it until a child runs again. The default is 10
// seconds; 0 or less fails a task at its first refusal. A start that cannot work
// (a missing executable or task.Limits.Dir: ENOENT, EACCES) fails its
// task at once, whatever d.
func WithStartRetry(d time.Duration) Option {
	return optionFunc(func(c *config) { c.startRetry = d })
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
	strat   strategy.Strategy
	policy  strategy.Policy
	log     procman.Logger
	grace   time.Duration
	termSig syscall.Signal
	tail    int
	stderr  *stderrSink // nil: children's stderr goes nowhere but the tail
	pm      *procman.Manager
	locks   *lock.Dir

	startRetry time.Duration // WithStartRetry

	runsTasks bool // strategy.RunsTasks

	failOnce sync.Once
	failErr  error         // set once, before failed is closed
	failed   chan struct{} // closed when the strategy gives up (Pool.Fail)

	mu      sync.Mutex
	inbox   []any // *task.Call, *joinReq, stopReq
	closing bool  // takes no more work
	seq     uint64
	done    chan struct{} // closed when the manager goroutine has ended

	// Owned by the manager goroutine.
	pending    []*job              // queued, in order
	ready      []*child            // children that may take work
	workers    map[*child]struct{} // children running server-mode workers
	catchers   map[*child]struct{} // children that catch the termination signal
	depth      int                 // jobs a child may have in flight (strategy.Pipeline)
	unresolved int                 // jobs taken in and not yet resolved
	workerJobs int                 // of which server-mode workers, which Join does not wait for
	ownJobs    int                 // of which calls that need a child of their own (limits)
	waiting    int                 // jobs waiting out a retry delay
	joins      []*joinReq
	timers     timerHeap
	stop       stopMode
	killAt     time.Time // Close: when SIGKILL follows SIGTERM
	killed     bool
	termSent   bool
	wakeAt     time.Time // asked for by the strategy
	handedOut  bool      // this round gave work to an idle child
	woke       bool      // this round resolved futures, waking their callers
	goodbyes   []*child  // lingering children whose last answer came this round

	// After the system refused a child (see refusal.go).
	pausedUntil time.Time     // no child starts before this
	pause       time.Duration // the last pause; it doubles with each refusal
	maxChildren int           // the most children kept alive; 0: no limit
	capStarts   int           // children started since maxChildren last grew
	cappedAt    time.Time     // when maxChildren was last lowered
	// When the refusals began that outlasted a task's start retry; until
	// a child runs, refused starts fail their tasks at once. Zero: none did.
	refusingSince time.Time
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

// cancelReq says that a job's context ended; it comes from the goroutine
// that context.AfterFunc starts.
type cancelReq struct {
	j     *job
	cause error
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
	policy := s.Policy()
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("dispatcher: refusing the strategy's policy: %w", err)
	}
	cfg := config{grace: 5 * time.Second, termSig: syscall.SIGTERM, stderr: os.Stderr, stderrTail: 64 << 10, startRetry: 10 * time.Second}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.termSig <= 0 || cfg.termSig > wire.MaxSignal {
		return nil, fmt.Errorf("dispatcher: WithTermSignal(%d): not a signal; give one from 1 to %d, such as syscall.SIGTERM", int(cfg.termSig), wire.MaxSignal)
	}
	if cfg.logger == nil {
		cfg.logger = nopLogger{}
	}
	d := &Dispatcher{
		strat:    s,
		policy:   policy,
		depth:    max(1, policy.Pipeline),
		log:      cfg.logger,
		grace:    cfg.grace,
		termSig:  cfg.termSig,
		tail:     cfg.stderrTail,
		done:     make(chan struct{}),
		failed:   make(chan struct{}),
		workers:  make(map[*child]struct{}),
		catchers: make(map[*child]struct{}),

		startRetry: cfg.startRetry,

		runsTasks: strategy.RunsTasks(s),
	}
	// Directories left by parents that died without Shutdown go first.
	// The dispatcher's own is made when a lock is first taken, by the
	// parent or a child, so that a dispatcher that takes none leaves
	// nothing behind if it dies.
	removed, err := lock.RemoveStale("")
	for _, path := range removed {
		d.log.Debug("removed the lock directory of a process that has ended", "path", path)
	}
	if err != nil {
		d.log.Debug("removing the lock directories of processes that have ended", "error", err)
	}
	locks, err := lock.New("")
	if err != nil {
		return nil, fmt.Errorf("dispatcher: naming the lock directory: %w", err)
	}
	d.locks = locks
	// No Pdeathsig option: every child asks for the parent-death signal
	// itself (see procman.Child), beside the control pipe, its lifeline.
	pmOpts := append([]procman.Option{
		procman.WithLogger(cfg.logger),
	}, cfg.pm...)
	d.pm = procman.New(pmOpts...)
	if cfg.stderr != nil && cfg.stderrTail > 0 {
		d.stderr = newStderrSink(cfg.stderr, cfg.logger)
	}
	started := make(chan error, 1)
	go d.run(started)
	if err := <-started; err != nil {
		_ = locks.Remove()
		if d.stderr != nil {
			d.stderr.close()
		}
		return nil, err
	}
	return d, nil
}

// Submit queues c; it is how task.Def.Schedule reaches the dispatcher. It
// never waits for a child. After Shutdown or Close it resolves c with
// ErrClosed at once, and a call whose task.Limits.Env the manager would
// refuses with that error, at once too.
func (d *Dispatcher) Submit(c *task.Call) {
	if !d.runsTasks {
		c.Resolver.Fail(ErrNoTasks)
		return
	}
	if l := c.Limits; l != nil {
		if err := childenv.Check(l.Env); err != nil {
			c.Resolver.Fail(fmt.Errorf("dispatcher: task %q: task.Limits.Env: %w", c.Task, err))
			return
		}
	}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		c.Resolver.Fail(ErrClosed)
		return
	}
	d.seq++
	d.inbox = append(d.inbox, newJob(c, d.seq))
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
// child, zombie, fd or goroutine of the dispatcher is left, apart from a
// goroutine still blocked in the Write of a stderr writer of your own that
// cannot be given a deadline (see WithStderr).
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
// asks the running children to stop (a stop frame, which ends their
// tasks' contexts), sends the termination signal (WithTermSignal) to the
// process groups of those that catch it already (the others catch it on
// the stop frame and send it to their own groups, so what every task
// started gets it), SIGKILL to what is left after the grace period
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

// Failed returns a channel that is closed when the dispatcher's strategy
// gives up, for instance when server mode passes its restart limit; Err
// then says why. The dispatcher goes on running until Shutdown or Close.
func (d *Dispatcher) Failed() <-chan struct{} { return d.failed }

// Err returns why the strategy gave up (see Failed), or nil.
func (d *Dispatcher) Err() error {
	select {
	case <-d.failed:
		return d.failErr
	default:
		return nil
	}
}

func (d *Dispatcher) fail(err error) {
	d.failOnce.Do(func() {
		d.failErr = err
		d.log.Error("the strategy gave up", "strategy", fmt.Sprint(d.strat), "error", err)
		close(d.failed)
	})
}

// StderrDropped returns how many bytes of its children's stderr (counted
// as they would have been written: each line with its prefix) the
// dispatcher has dropped because its writer (WithStderr, or the parent's
// stderr) did not take them in time, or failed to write them. It is safe
// to call at any time, also after the dispatcher has ended.
func (d *Dispatcher) StderrDropped() int64 {
	if d.stderr == nil {
		return 0
	}
	return d.stderr.dropped.Load()
}

// LockDir returns the path of the dispatcher's lock directory, shared with
// its children (see Lock). The directory is made when a lock is first
// taken in it, by the dispatcher or by a child: until then the path does
// not exist (use lock.At(d.LockDir()) to take locks there yourself). It
// is removed when the dispatcher ends; one that a process killed before
// its Shutdown left behind is removed by the next Start in any process
// of the same user (see lock.RemoveStale).
func (d *Dispatcher) LockDir() string { return d.locks.Path() }

// Lock takes the named lock that the dispatcher's children take with
// task.Lock, waiting until it is free or ctx ends.
func (d *Dispatcher) Lock(ctx context.Context, name string) (*lock.Lock, error) {
	return d.locks.Lock(ctx, name)
}

// TryLock takes the named lock if it is free now; if another holder has
// it, it returns lock.ErrHeld.
func (d *Dispatcher) TryLock(name string) (*lock.Lock, error) {
	return d.locks.TryLock(name)
}

// nopLogger is the logger of a dispatcher made without WithLogger.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
