package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
)

// child is one child process of the dispatcher. Its fields belong to the
// manager goroutine.
type child struct {
	d      *Dispatcher
	p      *procman.Process
	job    *job      // in flight, or nil
	limit  int       // tasks it may serve; < 0: no limit
	served int       // tasks it answered
	oldAt  time.Time // retire it once this passes; zero: never
	last   bool      // it takes no more work: its current invocation was its last, or it is retiring
	sent   []syscall.Signal
}

// newChild sets up the bookkeeping of a child under the dispatcher's
// policy, with the random spread applied.
func (d *Dispatcher) newChild(own bool) *child {
	c := &child{d: d, limit: d.policy.MaxTasks}
	if own || c.limit == 0 {
		c.limit = 1
	}
	if c.limit > 1 && d.policy.Spread > 0 {
		c.limit = max(1, int(float64(c.limit)*spread(d.policy.Spread)))
	}
	if d.policy.MaxAge > 0 {
		age := time.Duration(float64(d.policy.MaxAge) * spread(d.policy.Spread))
		c.oldAt = time.Now().Add(age)
	}
	return c
}

// spread returns a factor in [1-f, 1+f].
func spread(f float64) float64 {
	if f <= 0 {
		return 1
	}
	return 1 + f*(2*rand.Float64()-1)
}

// invocation encodes j for c, marking it Last when c is to serve no more.
func (c *child) invocation(j *job) []byte {
	last := c.limit > 0 && c.served+1 >= c.limit
	if !c.oldAt.IsZero() && !time.Now().Before(c.oldAt) {
		last = true
	}
	c.last = last
	return wire.AppendInvocation(nil, &wire.Invocation{
		Task:     j.call.Task,
		Arg:      j.call.Arg,
		Deadline: j.deadline,
		MaxRSS:   c.d.policy.MaxRSS,
		Last:     last,
	})
}

// give sends j to c, an idle child.
func (c *child) give(j *job) {
	c.job = j
	j.child = c
	if err := c.p.Send(wire.KindInvocation, c.invocation(j)); err != nil {
		// The child is gone or going; its exit resolves the job.
		c.d.log.Debug("sending an invocation failed", "pid", c.p.Pid(), "error", err)
	}
}

// tooOld reports whether c has passed its age.
func (c *child) tooOld(now time.Time) bool {
	return !c.oldAt.IsZero() && !now.Before(c.oldAt)
}

// terminate starts the termination sequence on c: the first signal now,
// SIGKILL when the grace period is over.
func (c *child) terminate() {
	if len(c.sent) > 0 {
		return
	}
	c.last = true
	c.signal(c.d.termSig)
	c.d.timers.add(timer{at: time.Now().Add(c.d.grace), kind: timerKill, c: c})
}

// kill ends the termination sequence, if c still runs.
func (c *child) kill() {
	if c.p.State() == procman.StateRunning {
		c.signal(syscall.SIGKILL)
	}
}

func (c *child) signal(sig syscall.Signal) {
	if err := c.p.Signal(sig); err != nil {
		c.d.log.Warn("signalling a child", "pid", c.p.Pid(), "signal", sig.String(), "error", err)
		return
	}
	c.sent = append(c.sent, sig)
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
		c.served++
		switch {
		case j.cause == nil && k == wire.KindTaskFailed && !j.deadline.IsZero() && !time.Now().Before(j.deadline):
			// The task saw its deadline in the child (its context carries
			// it) and failed with it, just before our timer would fire.
			j.cause = context.DeadlineExceeded
			d.resolve(j, nil, d.cancelError(j, p.Pid(), nil))
		case j.cause != nil:
			d.resolve(j, nil, d.cancelError(j, p.Pid(), nil))
		case k == wire.KindAnswer:
			d.resolve(j, payload, nil)
		default:
			d.resolve(j, nil, taskError(j, p.Pid(), payload))
		}
		if !c.last && d.stop != killing {
			d.idle = append(d.idle, c)
		}
	case wire.KindRetiring:
		c.last = true
	default:
		// Heartbeats and progress have no reader yet.
	}
}

func taskError(j *job, pid int, payload []byte) error {
	f, err := wire.DecodeFailure(payload)
	if err != nil {
		return &result.TaskError{Task: j.call.Task, Pid: pid, Message: fmt.Sprintf("the child's failure report does not decode: %v", err)}
	}
	return &result.TaskError{Task: j.call.Task, Pid: pid, Message: f.Message, Panicked: f.Panicked, Stack: f.Stack}
}

// Exited implements procman.Handler.
func (c *child) Exited(p *procman.Process, e *procman.Exit) {
	d := c.d
	d.dropIdle(c)
	j := c.job
	if j == nil {
		return
	}
	c.job = nil
	cause := e.Err
	if cause == nil && d.stop == killing {
		cause = ErrKilled
	}
	d.died(j, &result.ChildDeath{
		Task:     j.call.Task,
		Pid:      e.Pid,
		ExitCode: e.ExitCode,
		Signal:   e.Signal,
		Duration: e.Duration,
		Stderr:   e.Stderr,
		Err:      cause,
		Limit:    limitHit(j, e),
	})
}

// limitHit names the limit of j's call that its child ran into, where the
// kernel or the Go runtime tells: for CPU time SIGXCPU, which task.Serve
// reports on stderr before it kills the child, or SIGKILL at the hard
// limit; for address space the runtime's "out of memory".
func limitHit(j *job, e *procman.Exit) string {
	l := j.call.Limits
	if l == nil {
		return ""
	}
	switch {
	case l.CPUTime > 0 && (e.Signal == syscall.SIGXCPU || bytes.Contains(e.Stderr, []byte("(SIGXCPU)")) ||
		(e.Signal == syscall.SIGKILL && e.UserTime+e.SystemTime >= l.CPUTime)):
		return "CPU time (RLIMIT_CPU)"
	case l.AddressSpace > 0 && e.Signal == 0 && bytes.Contains(e.Stderr, []byte("out of memory")):
		return "address space (RLIMIT_AS)"
	}
	return ""
}

// dropIdle removes c from the idle children.
func (d *Dispatcher) dropIdle(c *child) {
	for i, x := range d.idle {
		if x == c {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			return
		}
	}
}
