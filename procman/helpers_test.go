package procman_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// safety is how long a test lets the manager run before it calls it stuck.
// Nothing here should take a tenth of it.
const safety = 30 * time.Second

// newManager returns a set-up Manager that is torn down when the test ends
// (before the leak check, which is registered earlier).
func newManager(t *testing.T, opts ...procman.Option) *procman.Manager {
	t.Helper()
	m := procman.New(opts...)
	require.NoError(t, m.Setup())
	t.Cleanup(func() { require.NoError(t, m.Teardown()) })
	return m
}

// work encodes an invocation of task with arg; last says whether the child
// exits after it.
func work(task, arg string, last bool) []byte {
	return wire.AppendInvocation(nil, &wire.Invocation{Task: task, Arg: []byte(arg), Last: last})
}

// message is one frame a handler heard, with the state its process was in.
type message struct {
	kind    procman.Kind
	payload []byte
	state   procman.State
	reply   bool // a reply; else a note
}

// child is a Handler that records what one child sent and how it ended,
// and what the manager showed while it did.
type child struct {
	msgs      []message
	exit      *procman.Exit
	exitState procman.State // p.State() inside Exited
	exitCount int           // how many times Exited ran
	late      int           // messages after Exited
	onMessage func(p *procman.Process, k procman.Kind, payload []byte)
	onExit    func(p *procman.Process, e *procman.Exit)
}

// Reply and Note implement procman.Handler: each records like Message.
func (c *child) Reply(p *procman.Process, k procman.Kind, payload []byte) {
	c.record(p, k, payload, true)
}

func (c *child) Note(p *procman.Process, k procman.Kind, payload []byte) {
	c.record(p, k, payload, false)
}

func (c *child) record(p *procman.Process, k procman.Kind, payload []byte, reply bool) {
	if c.exit != nil {
		c.late++
	}
	c.msgs = append(c.msgs, message{k, payload, p.State(), reply})
	if c.onMessage != nil {
		c.onMessage(p, k, payload)
	}
}

func (c *child) Exited(p *procman.Process, e *procman.Exit) {
	c.exitCount++
	c.exit = e
	c.exitState = p.State()
	if c.onExit != nil {
		c.onExit(p, e)
	}
}

// heard reports whether the child sent a frame of kind k.
func (c *child) heard(k procman.Kind) bool {
	for _, m := range c.msgs {
		if m.kind == k {
			return true
		}
	}
	return false
}

// answers returns the payloads of the child's answers, in order.
func (c *child) answers() [][]byte {
	var out [][]byte
	for _, m := range c.msgs {
		if m.kind == wire.KindAnswer {
			out = append(out, m.payload)
		}
	}
	return out
}

// start starts a child with spec and a fresh recording handler.
func start(t *testing.T, m *procman.Manager, spec procman.Spec) (*procman.Process, *child) {
	t.Helper()
	c := &child{}
	p, err := m.CreateProcess(spec, c)
	require.NoError(t, err)
	require.NotNil(t, p)
	return p, c
}

// stepUntil runs Step until done reports true. A deadline keeps a broken
// manager from hanging the test.
func stepUntil(t *testing.T, m *procman.Manager, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety)
	m.SetDeadline(deadline)
	defer m.SetDeadline(time.Time{})
	for !done() {
		require.NoError(t, m.Step())
		if !time.Now().Before(deadline) {
			t.Fatalf("nothing happened for %v: the manager is stuck", safety)
		}
	}
}

// waitExit steps until c has been told of its child's exit.
func waitExit(t *testing.T, m *procman.Manager, c *child) *procman.Exit {
	t.Helper()
	stepUntil(t, m, func() bool { return c.exit != nil })
	require.Equal(t, 1, c.exitCount, "Exited calls")
	require.Zero(t, c.late, "messages after Exited")
	return c.exit
}

// waitHeard steps until c has heard a frame of kind k.
func waitHeard(t *testing.T, m *procman.Manager, c *child, k procman.Kind) message {
	t.Helper()
	stepUntil(t, m, func() bool { return c.heard(k) || c.exit != nil })
	for _, msg := range c.msgs {
		if msg.kind == k {
			return msg
		}
	}
	t.Fatalf("the child exited (%v) without sending a %v frame", c.exit, k)
	return message{}
}

// isGone reports whether a process no longer runs: there is no such
// process (or the pid is another process now), or it is a zombie, dead
// and waiting for whoever is its parent now to reap it. start is the
// process's start time, or 0 when unknown.
func isGone(pid int, start uint64) bool {
	s, err := testio.ReadStat(pid)
	return err != nil || s.Exited() || (start != 0 && s.Start != start)
}

// waitGone waits until every pid (with its start time) has exited, or
// fails after within.
func waitGone(t *testing.T, within time.Duration, pids map[int]uint64) {
	t.Helper()
	deadline := time.Now().Add(within)
	var alive []int
	for pid, start := range pids {
		exited, err := testio.WaitExited(pid, start, time.Until(deadline))
		require.NoError(t, err)
		if !exited {
			alive = append(alive, pid)
		}
	}
	if len(alive) > 0 {
		t.Fatalf("processes %v still run after %v; want them gone", alive, within)
	}
}

// stepWokenLater runs step while another goroutine calls Wakeup a few
// milliseconds later, and fails if step sleeps to its deadline instead.
func stepWokenLater(t *testing.T, m *procman.Manager, step func() error) {
	t.Helper()
	deadline := time.Now().Add(safety)
	m.SetDeadline(deadline)
	go func() {
		time.Sleep(2 * time.Millisecond)
		_ = m.Wakeup()
	}()
	require.NoError(t, step())
	require.True(t, time.Now().Before(deadline), "Step slept to its deadline: the Wakeup was lost")
}
