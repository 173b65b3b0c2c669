package cluster

// This file holds every use of the core module's API: the task.Call that
// a Client takes and resolves, the call that a worker runs on its local
// dispatcher, and the library's error types and sentinels as they cross
// the wire.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// Submit publishes the call for a worker; it is how task.Def.Schedule
// reaches the Client. It never waits on the network. The call's context,
// deadline, retries, process settings and activity timeout go with it to the worker.
func (c *Client) Submit(call *task.Call) { c.submit(outOf(call, "")) }

// Key returns a task.Scheduler that schedules calls through c whose
// result is also kept under key for Config.ResultTTL, where Fetch finds it
// after the caller restarted. A call whose key holds a result already
// (within ResultTTL) does not run again: its future gets that result. A
// key is made of letters, digits and - _ / = in dot-separated words, at
// most 200 bytes; a call with another key fails at once.
func (c *Client) Key(key string) task.Scheduler { return keyed{c: c, key: key} }

type keyed struct {
	c   *Client
	key string
}

func (k keyed) Submit(call *task.Call) { k.c.submit(outOf(call, k.key)) }

// outOf takes a task.Call apart for the wire. The Client owns the call
// from Submit on and is the only one to resolve it, so done is closed by
// the resolution that took.
func outOf(call *task.Call, key string) outCall {
	w := wireCall{
		Task:       call.Task,
		Arg:        call.Arg,
		Key:        key,
		Deadline:   call.Deadline,
		Retries:    call.Retries,
		RetryDelay: call.RetryDelay,
		Activity:   call.ActivityTimeout,
	}
	if call.Context != nil {
		w.Cancellable = true
		if dl, ok := call.Context.Deadline(); ok && (w.Deadline.IsZero() || dl.Before(w.Deadline)) {
			w.Deadline = dl
		}
	}
	if p := call.Process; p != nil {
		w.Limits = &wireLimits{AddressSpace: p.AddressSpace, CPUTimeNs: int64(p.CPUTime), Nice: p.Nice, Dir: p.Dir, Env: p.Env}
	}
	done := make(chan struct{})
	settled := func(took bool) {
		if took {
			close(done)
		}
	}
	return outCall{
		wire:    w,
		ctx:     call.Context,
		resolve: func(p []byte) { settled(call.Resolve(p)) },
		fail:    func(err error) { settled(call.Fail(err)) },
		done:    done,
		cancelled: func(cause error) error {
			return &result.CancelError{Task: call.Task, Cause: cause}
		},
		progress: func(p wireProgress) {
			call.ReportProgress(result.Progress{Done: p.Done, Total: p.Total, Attempt: p.Attempt, Sent: time.Unix(0, p.SentNs)})
		},
		end: func(u *wireUsage, log []string) {
			var ru *result.Usage
			if u != nil {
				ru = &result.Usage{UserCPU: time.Duration(u.UserNs), SystemCPU: time.Duration(u.SystemNs), MaxRSS: u.MaxRSS}
			}
			call.ReportEnd(ru, log)
		},
	}
}

// Fetch returns the result that a call scheduled through c.Key(key)
// stored, decoded as def's result, waiting until it is stored or ctx ends.
// It finds results stored by any Client of the same prefix within
// Config.ResultTTL, so a caller that restarted gets the answers of the
// calls it made before. A call that failed gives its error, as its future
// did.
func Fetch[A, R any](ctx context.Context, c *Client, def *task.Def[A, R], key string) (R, error) {
	var zero R
	payload, err := c.fetch(ctx, key)
	if err != nil {
		return zero, err
	}
	// The task's own future decodes the payload, with the task's codec.
	var arg A
	r, err := def.Schedule(storedAnswer(payload), arg).Value()
	if err != nil {
		return zero, fmt.Errorf("cluster: task %q: the result under the key %q: %w", def.Name(), key, err)
	}
	return r, nil
}

// storedAnswer is a task.Scheduler that runs nothing: it resolves every call
// with the answer it holds.
type storedAnswer []byte

func (s storedAnswer) Submit(call *task.Call) { call.Resolve(s) }

// Serve runs the calls of the cluster on d until ctx ends: it takes a call
// from the calls stream whenever one of its slots is free (see Slots),
// runs it on d with its options (so d's strategy, reuse, limits, retries
// and activity timeouts apply unchanged), renews the call's lease while it
// runs, and stores its result. When ctx ends, Serve stops the calls it
// runs and hands them back to the stream for another worker, and returns
// nil once they are back. It returns an error when it cannot set up, when
// nc is closed, or when d ends first (its calls are handed back too). It
// makes the streams and the consumer when they are missing (see
// WithConfig). The caller keeps nc and d.
func Serve(ctx context.Context, nc *nats.Conn, d *dispatcher.Dispatcher, opts ...ServeOption) error {
	if d == nil {
		return errors.New("cluster: Serve with a nil dispatcher")
	}
	return serve(ctx, nc, newLocal(d), opts)
}

// local is a worker's view of its dispatcher.
type local struct {
	d    *dispatcher.Dispatcher
	defs sync.Map // name -> *task.Def[[]byte, []byte] of each task known to be defined
}

func newLocal(d *dispatcher.Dispatcher) *local { return &local{d: d} }

// errDefined is how probe answers a call that reached it.
var errDefined = errors.New("cluster: the task is defined")

// probe is a task.Scheduler that runs nothing: it fails every call with
// errDefined.
type probe struct{}

func (probe) Submit(call *task.Call) { call.Fail(errDefined) }

// known reports whether this program defines the task name: task.Raw
// fails the call of a name that no task has before any scheduler sees it.
// A task once defined stays defined, so a name found is not probed again.
func (l *local) known(name string) bool {
	if _, ok := l.defs.Load(name); ok {
		return true
	}
	def := task.Raw(name)
	if _, err := def.Schedule(probe{}, nil).Value(); !errors.Is(err, errDefined) {
		return false
	}
	l.defs.Store(name, def)
	return true
}

// def returns the handle of the task name, which known found defined.
func (l *local) def(name string) *task.Def[[]byte, []byte] {
	if d, ok := l.defs.Load(name); ok {
		return d.(*task.Def[[]byte, []byte])
	}
	return task.Raw(name)
}

// ended is closed when the dispatcher has ended.
func (l *local) ended() <-chan struct{} { return l.d.Done() }

// start runs c on the dispatcher, stopped when ctx ends; a nil ctx runs
// it to its end. progress, when not nil, is called with the call's
// progress reports, off the dispatcher's goroutine. done is closed when
// it has answered; answer returns the encoded answer or the error, and
// sets c.usage to what the call cost, when that is known, and c.log to
// the last lines its task logged.
func (l *local) start(ctx context.Context, c *wireCall, progress func(wireProgress)) (done <-chan struct{}, answer func() ([]byte, error)) {
	var opts []task.CallOption
	if ctx != nil {
		opts = append(opts, task.WithContext(ctx))
	}
	if !c.Deadline.IsZero() {
		opts = append(opts, task.WithTimeout(time.Until(c.Deadline)))
	}
	if c.Retries > 0 {
		opts = append(opts, task.WithRetries(c.Retries, c.RetryDelay))
	}
	if c.Activity > 0 {
		opts = append(opts, task.WithActivityTimeout(c.Activity))
	}
	if wl := c.Limits; wl != nil {
		opts = append(opts, task.WithProcess(task.Process{AddressSpace: wl.AddressSpace, CPUTime: time.Duration(wl.CPUTimeNs), Nice: wl.Nice, Dir: wl.Dir, Env: wl.Env}))
	}
	r := l.def(c.Task).Schedule(l.d, c.Arg, opts...)
	if progress != nil {
		r.OnProgress(func(p result.Progress) {
			progress(wireProgress{Done: p.Done, Total: p.Total, Attempt: p.Attempt, SentNs: p.Sent.UnixNano()})
		})
	}
	return r.Done(), func() ([]byte, error) {
		v, err := r.Value()
		if u, ok := r.Usage(); ok {
			c.usage = &wireUsage{UserNs: int64(u.UserCPU), SystemNs: int64(u.SystemCPU), MaxRSS: u.MaxRSS}
		}
		c.log = r.Log()
		return v, err
	}
}

// handBack reports whether err says that the dispatcher was shut down or
// closed under the call (it never started, or Close killed its child),
// which then goes back to the stream instead of failing.
func (l *local) handBack(err error) bool {
	return errors.Is(err, dispatcher.ErrClosed) || errors.Is(err, dispatcher.ErrKilled)
}

// neverStarted is the error of a call stopped before it ran.
func (l *local) neverStarted(taskName string, cause error) error {
	return &result.CancelError{Task: taskName, Cause: cause}
}

// sentinels are the errors that keep their identity across the wire:
// errors.Is finds them in an error rebuilt from its wire form.
var sentinels = sync.OnceValue(func() map[string]error {
	return map[string]error{
		"dispatcher.ErrClosed":         dispatcher.ErrClosed,
		"dispatcher.ErrStalled":        dispatcher.ErrStalled,
		"dispatcher.ErrNoTasks":        dispatcher.ErrNoTasks,
		"dispatcher.ErrInactive":       dispatcher.ErrInactive,
		"dispatcher.ErrKilled":         dispatcher.ErrKilled,
		"task.ErrNotInChild":           task.ErrNotInChild,
		"task.ErrNilScheduler":         task.ErrNilScheduler,
		"lock.ErrHeld":                 lock.ErrHeld,
		"procman.ErrInputClosed":       procman.ErrInputClosed,
		"procman.ErrHungUp":            procman.ErrHungUp,
		"context.Canceled":             context.Canceled,
		"context.DeadlineExceeded":     context.DeadlineExceeded,
		"cluster.ErrMalformedCall":     ErrMalformedCall,
		"cluster.ErrUnknownTask":       ErrUnknownTask,
		"cluster.ErrTooManyDeliveries": ErrTooManyDeliveries,
	}
})

// toWire makes the wire form of err.
func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{}
	switch e := err.(type) {
	case *result.TaskError:
		w.Kind, w.Task, w.Pid, w.Message, w.Panicked, w.Stack = kindTask, e.Task, e.Pid, e.Message, e.Panicked, e.Stack
	case *result.ChildDeath:
		w.Kind, w.Task, w.Pid, w.ExitCode, w.Signal = kindDeath, e.Task, e.Pid, e.ExitCode, int(e.Signal)
		w.DurationNs, w.Stderr, w.Limit, w.Cause = int64(e.Duration), e.Stderr, e.Limit, toWire(e.Err)
	case *result.RetryError:
		w.Kind, w.Task = kindRetry, e.Task
		for _, d := range e.Deaths {
			w.Deaths = append(w.Deaths, toWire(d))
		}
	case *result.CancelError:
		w.Kind, w.Task, w.Started, w.Pid, w.Cause = kindCancel, e.Task, e.Started, e.Pid, toWire(e.Cause)
		for _, s := range e.Sent {
			w.Sent = append(w.Sent, int(s))
		}
	case *DeadLetterError:
		w.Kind, w.Task, w.ID, w.Deliveries, w.Reason, w.Cause = kindDead, e.Task, e.ID, e.Deliveries, e.Reason, toWire(e.Cause)
	default:
		w.Kind, w.Message = kindPlain, err.Error()
		if inner := errors.Unwrap(err); inner != nil {
			w.Cause = toWire(inner)
		}
	}
	for name, s := range sentinels() {
		if errors.Is(err, s) {
			w.Is = append(w.Is, name)
		}
	}
	return w
}

// fromWire rebuilds an error from its wire form: the library's types as
// they were, sentinels as themselves, anything else as an error with the
// same text that errors.Is matches against the same sentinels.
func fromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	switch w.Kind {
	case kindTask:
		return &result.TaskError{Task: w.Task, Pid: w.Pid, Message: w.Message, Panicked: w.Panicked, Stack: w.Stack}
	case kindDeath:
		return &result.ChildDeath{Task: w.Task, Pid: w.Pid, ExitCode: w.ExitCode, Signal: syscall.Signal(w.Signal),
			Duration: time.Duration(w.DurationNs), Stderr: w.Stderr, Limit: w.Limit, Err: fromWire(w.Cause)}
	case kindRetry:
		e := &result.RetryError{Task: w.Task}
		for _, d := range w.Deaths {
			if d == nil {
				continue
			}
			if cd, ok := fromWire(d).(*result.ChildDeath); ok {
				e.Deaths = append(e.Deaths, cd)
			}
		}
		return e
	case kindCancel:
		e := &result.CancelError{Task: w.Task, Cause: fromWire(w.Cause), Started: w.Started, Pid: w.Pid}
		for _, s := range w.Sent {
			e.Sent = append(e.Sent, syscall.Signal(s))
		}
		return e
	case kindDead:
		return &DeadLetterError{Task: w.Task, ID: w.ID, Deliveries: w.Deliveries, Reason: w.Reason, Cause: fromWire(w.Cause)}
	}
	all := sentinels()
	var is []error
	for _, name := range w.Is {
		if s, ok := all[name]; ok {
			if s.Error() == w.Message {
				return s
			}
			is = append(is, s)
		}
	}
	if w.Message == "" {
		w.Message = "cluster: an error of a kind this program does not know: " + w.Kind
	}
	return &remoteError{msg: w.Message, is: is, cause: fromWire(w.Cause)}
}
