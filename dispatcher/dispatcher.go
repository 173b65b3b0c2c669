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
	"github.com/procrastinate-go/procrastinate/internal/lockdir"
	"github.com/procrastinate-go/procrastinate/internal/seam"
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
	usage      bool
	pm         []procman.Option
}

func init() {
	seam.ProcmanOptions = func(opts ...procman.Option) any {
		return optionFunc(func(c *config) { c.pm = append(c.pm, opts...) })
	}
	seam.LockDir = func(d any) string { return d.(*Dispatcher).locks.Path() }
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
// counted (see Stats.StderrDropped): the log says so, and so does the stream,
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

// WithUsage has each child measure what each call costs it, for
// result.Result.Usage, the TaskDone event and Stats' CPU time: the CPU
// time of the child and of what its task waited for, and the peak
// resident set (see docs/observability.md). A child started for one call
// reports its whole life, which adds little to its start; a reused child
// pays a few system calls and a read of /proc/self/status a call, which
// is several times the cost of a no-op call in a reused child.
// Without it, Usage reports nothing.
func WithUsage() Option {
	return optionFunc(func(c *config) { c.usage = true })
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
// (a missing executable or task.Process.Dir: ENOENT, EACCES) fails its
// task at once, whatever d.
func WithStartRetry(d time.Duration) Option {
	return optionFunc(func(c *config) { c.startRetry = d })
}

// WithMaxPayload sets the largest answer, in bytes, that the dispatcher
// takes from a child: a child that sends a larger frame is stopped, and
// its task fails with a *result.ChildDeath whose cause says so. The
// default is 1 GiB.
func WithMaxPayload(n int) Option {
	return optionFunc(func(c *config) { c.pm = append(c.pm, procman.WithMaxPayload(n)) })
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
	obs     observer // counters and subscribers (see Stats, Subscribe)
	locks   *lockdir.Dir

	startRetry time.Duration // WithStartRetry
	usage      bool          // WithUsage

	runsTasks bool // strategy.RunsTasks

	failOnce sync.Once
	failMu   sync.Mutex
	failErr  error // why the strategy gave up (Pool.Fail); nil until it does

	mu      sync.Mutex
	inbox   []any // *job, cancelReq, *joinReq, stopReq, auditReq
	closing bool  // takes no more work
	seq     uint64
	done    chan struct{} // closed when the manager goroutine has ended

	// Owned by the manager goroutine.
	pending    []*job              // queued, in order
	ready      []*child            // children that may take work, in the order they became ready
	children   map[*child]struct{} // children started and not gone
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

// auditReq asks the manager goroutine for its audit of its counters
// against its states (see Dispatcher.audit); the package's tests send it.
type auditReq chan<- error

// cancelReq says that a job's context ended; it comes from the goroutine
// that context.AfterFunc starts.
type cancelReq struct {
	j     *job
	cause error
}

// Start starts a dispatcher that runs its manager goroutine until Shutdown
// or Close. The strategy decides when children start; a strategy that is
// nil, or misconfigured (strategy.Throttled(0): its Validate method, or its
// policy's, returns an error), is refused with an error.
func Start(s strategy.Strategy, opts ...Option) (*Dispatcher, error) {
	if s == nil {
		return nil, errors.New("dispatcher: Start with a nil strategy (use strategy.Default())")
	}
	if v, ok := s.(interface{ Validate() error }); ok {
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
		children: make(map[*child]struct{}),
		workers:  make(map[*child]struct{}),
		catchers: make(map[*child]struct{}),

		startRetry: cfg.startRetry,
		usage:      cfg.usage,

		runsTasks: runsTasks(s),
	}
	// Directories left by parents that died without Shutdown go first.
	// The dispatcher's own is made when a lock is first taken, by the
	// parent or a child, so that a dispatcher that takes none leaves
	// nothing behind if it dies.
	removed, err := lockdir.RemoveStale("")
	for _, path := range removed {
		d.log.Debug("removed the lock directory of a process that has ended", "path", path)
	}
	if err != nil {
		d.log.Debug("removing the lock directories of processes that have ended", "error", err)
	}
	locks, err := lockdir.New("")
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

// runsTasks reports whether s starts children for scheduled tasks: false
// for a strategy with a RunsTasks method that says so (server mode).
func runsTasks(s strategy.Strategy) bool {
	r, ok := s.(interface{ RunsTasks() bool })
	return !ok || r.RunsTasks()
}

// Submit queues c, which makes the dispatcher a task.Scheduler:
// task.Def.Schedule reaches it here. It never waits for a child. It
// resolves c at once with ErrClosed after Shutdown or Close, with
// ErrNoTasks when the strategy runs no scheduled tasks, and with an error
// that says which entry is wrong when c.Process.Env has one that the
// child cannot be given.
func (d *Dispatcher) Submit(c *task.Call) {
	if !d.runsTasks {
		d.refuse(c, ErrNoTasks)
		return
	}
	if p := c.Process; p != nil {
		if err := childenv.Check(p.Env); err != nil {
			d.refuse(c, fmt.Errorf("dispatcher: task %q: task.Process.Env: %w", c.Task, err))
			return
		}
	}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		d.refuse(c, ErrClosed)
		return
	}
	d.seq++
	j := newJob(c, d.seq)
	d.submitted(j)
	d.inbox = append(d.inbox, j)
	d.mu.Unlock()
	d.wakeup()
}

func (d *Dispatcher) wakeup() {
	if err := d.pm.Wakeup(); err != nil && !errors.Is(err, procman.ErrTornDown) {
		d.log.Error("waking the manager goroutine", "error", err)
	}
}

// Join waits until every task scheduled before it was called has
// resolved, and returns nil; or, when ctx ends first, returns ctx.Err()
// itself and leaves the tasks as they are (as Result.Wait does). A
// server-mode worker is not a task Join waits for.
func (d *Dispatcher) Join(ctx context.Context) error {
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

// Done returns a channel that is closed when the dispatcher has ended:
// after Shutdown or Close, or once its strategy gave up (see Err). Then
// no child of it is left.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }

// Err returns nil, unless the dispatcher's strategy gave up; then it
// returns why, from the moment it gave up. A server (strategy.SpawnN)
// gives up when its workers end more often than strategy.MaxRestarts
// allows, with a *strategy.RestartLimitError. A dispatcher whose strategy
// gave up shuts down on its own, as Shutdown does: it takes no more work,
// stops the workers (their context ends; after the grace period they are
// killed) and lets what runs finish; Done is closed when it has ended.
func (d *Dispatcher) Err() error {
	d.failMu.Lock()
	defer d.failMu.Unlock()
	return d.failErr
}

// fail records that the strategy gave up, and shuts the dispatcher down.
func (d *Dispatcher) fail(err error) {
	d.failOnce.Do(func() {
		d.failMu.Lock()
		d.failErr = err
		d.failMu.Unlock()
		d.log.Error("the strategy gave up; shutting down", "strategy", fmt.Sprint(d.strat), "error", err)
		d.request(draining)
	})
}

// Lock takes the named lock that the dispatcher's children take with
// task.Lock, waiting until it is free or ctx ends; then it returns an
// error that wraps ctx.Err(). A name must be a plain file name (not empty,
// not "." or "..", without '/' or NUL, at most 255 bytes): another is
// refused with a *lock.NameError. Each dispatcher has locks of its own,
// which live as long as it does: after Shutdown or Close, Lock fails with
// an error that wraps fs.ErrNotExist. See package lock for what a lock
// guarantees.
func (d *Dispatcher) Lock(ctx context.Context, name string) (*lock.Lock, error) {
	return lockdir.Public[lock.Lock](d.locks.Lock(ctx, name))
}

// TryLock takes the named lock if it is free now; if another holder has
// it, it returns lock.ErrHeld. Its other errors are those of Lock.
func (d *Dispatcher) TryLock(name string) (*lock.Lock, error) {
	return lockdir.Public[lock.Lock](d.locks.TryLock(name))
}

// nopLogger is the logger of a dispatcher made without WithLogger.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
