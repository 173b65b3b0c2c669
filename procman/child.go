package procman

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
	"github.com/procrastinate-go/procrastinate/internal/wire"
)

// The cookie that marks a process as a child of a Manager. Its value names
// the protocol version, so that an executable from another version refuses
// to run as a child instead of misreading the pipes.
const (
	cookieKey   = "PROCRASTINATE_CHILD"
	cookieValue = "procrastinate-go.v1"
)

// The child's protocol fds.
const (
	invocationFD = 3
	messageFD    = 4
)

// IsChild reports whether this process was started as a child by a Manager
// and has not yet been served (Serve removes the mark).
func IsChild() bool {
	_, ok := os.LookupEnv(cookieKey)
	return ok
}

// Serve is the child's entry. In a process that was not started by a
// Manager it returns at once and does nothing. In a child it removes the
// cookie from the environment (so that the child may start children of its
// own), checks its pipes, closes any other fd it inherited, calls run with
// its end of the pipes, and exits: with status 0 when run returns nil, else
// with status 1 after printing run's error on stderr. It never returns in a
// child.
//
// A process started by hand with the cookie but without the pipes exits
// with status 2 and a one-line message on stderr.
func Serve(run func(c *Child) error) {
	v, ok := os.LookupEnv(cookieKey)
	if !ok {
		return
	}
	os.Unsetenv(cookieKey)
	if v != cookieValue {
		fail(fmt.Sprintf("started as a child of protocol %q, but this executable speaks %q; parent and child must be the same build", v, cookieValue))
	}
	c, err := newChild()
	if err != nil {
		fail(err.Error())
	}
	err = run(c)
	tracepoint.Dump()
	if err != nil {
		fmt.Fprintf(os.Stderr, "procrastinate: child %d: %v\n", os.Getpid(), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "procrastinate: %s\n", msg)
	os.Exit(2)
}

// Child is a child's end of its pipes: invocations come in through Next,
// frames go out through Send. Its methods are safe for concurrent use.
//
// A goroutine reads the invocation pipe ahead of the task. When the pipe
// ends while an invocation is in flight (taken by Next and not yet answered
// with a terminal frame), or without the stop frame that Process.CloseInput
// sends before it closes the pipe on purpose, the parent is gone: the child
// kills its own process group at once, so that no orphan outlives its
// parent, nor what its tasks started.
type Child struct {
	in, out *os.File
	wmu     sync.Mutex
	inv     chan []byte
	stop    chan struct{}
	stopped sync.Once
	pending atomic.Int64 // invocations received and not yet answered
	err     error        // why the invocation stream ended; read after inv is closed
	sigOnce sync.Once
	sigs    chan os.Signal  // what catch asked for
	outConn syscall.RawConn // out's, for vmsplice; nil: plain writes only
	lent    []byte          // a payload whose pages the pipe may still hold; guarded by wmu
}

func newChild() (*Child, error) {
	for _, fd := range []int{invocationFD, messageFD} {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			return nil, fmt.Errorf("started as a child (%s is set) but fd %d is not a pipe from a parent; this program is meant to be started by its dispatcher, not by hand", cookieKey, fd)
		}
		// What the task starts must not inherit the protocol pipes.
		syscall.CloseOnExec(fd)
	}
	closeInherited()
	// Non-blocking, the pipes are waited on by the runtime's poller: the
	// reader goroutine then parks without holding a thread, and the task's
	// goroutine that it wakes runs on the same one.
	for _, fd := range []int{invocationFD, messageFD} {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("setting fd %d non-blocking: %w", fd, err)
		}
	}
	c := &Child{
		in:   os.NewFile(invocationFD, "invocations"),
		out:  os.NewFile(messageFD, "messages"),
		inv:  make(chan []byte, readAhead),
		stop: make(chan struct{}),
	}
	if rc, err := c.out.SyscallConn(); err == nil {
		c.outConn = rc
	}
	if parentDeathSignal() == ParentDeathSignal {
		c.catch(ParentDeathSignal)
	}
	go c.readLoop()
	return c, nil
}

// closeInherited closes every fd above the protocol pipes that came to
// this process through exec. The Go runtime and the program open theirs
// close-on-exec, so at this point an fd without the flag is one that the
// parent's own launcher (a shell, a CI runner) leaked to the parent, which
// passed it on without knowing: a child holds fds 0 to 4 and nothing else
// of its parent's world. Best effort: without /proc/self/fd it does nothing.
func closeInherited() {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var names []string
	buf := make([]byte, 4096)
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	syscall.Close(dir)
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= messageFD || fd == dir {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}

func (c *Child) readLoop() {
	defer close(c.inv)
	// Buffered: invocations sent back to back arrive in one read.
	in := bufio.NewReaderSize(c.in, 64<<10)
	first := true
	told := false // the parent said goodbye: the end of the pipe is not its death
	for {
		k, payload, err := wire.ReadFrame(in, wire.DefaultMaxPayload)
		if err != nil {
			switch {
			case err == io.EOF:
				err = nil
				if c.pending.Load() > 0 || !told {
					lifeline()
				}
			case errors.Is(err, io.ErrUnexpectedEOF):
				// The pipe ended inside a frame: the parent died while
				// it wrote.
				fmt.Fprintf(os.Stderr, "procrastinate: child %d: the invocation pipe ended inside a frame; the parent is gone\n", os.Getpid())
				lifeline()
			}
			c.err = err
			return
		}
		switch k {
		case wire.KindInvocation:
			tracepoint.Mark(tracepoint.ChildRead)
			if first {
				// The parent sets the child's limits before it writes
				// the first invocation.
				first = false
				if cpuLimited() {
					c.catch(syscall.SIGXCPU)
				}
			}
			c.pending.Add(1)
			c.inv <- payload
		case wire.KindStop:
			told = true
			c.stopped.Do(func() { close(c.stop) })
		default:
			c.err = fmt.Errorf("procman: unexpected %v frame on the invocation pipe", k)
			return
		}
	}
}

// ParentDeathSignal is the signal a child takes as news of its parent's
// death: on it the child kills its whole process group, itself and what its
// task started. Use it with WithPdeathsig. SIGKILL there would kill the
// child alone and leave what it started running. It is a real-time signal
// (40), which the Go runtime ignores unless asked for, and which a task
// should not use for anything else.
const ParentDeathSignal = syscall.Signal(40)

// catch makes the child answer sig, one of the signals a child answers
// the same way whatever its task: ParentDeathSignal (when the parent set
// it, see WithPdeathsig) runs the lifeline; SIGXCPU (when the child has a
// CPU time limit) is said on stderr and kills the child's group, since
// the Go runtime would otherwise ignore it and run on to the hard limit.
// Each is caught only when it can come: the first signal.Notify in a
// process starts two threads, which cost a fresh child about a tenth of
// its start-up. SIGTERM keeps its default (the child dies) unless the code
// that runs tasks asks for it, as task.Serve does.
func (c *Child) catch(sig os.Signal) {
	c.sigOnce.Do(func() {
		c.sigs = make(chan os.Signal, 2)
		go c.handleSignals()
	})
	signal.Notify(c.sigs, sig)
}

func (c *Child) handleSignals() {
	for s := range c.sigs {
		switch s {
		case ParentDeathSignal:
			lifeline()
		case syscall.SIGXCPU:
			fmt.Fprintf(os.Stderr, "procrastinate: child %d: CPU time limit exceeded (SIGXCPU)\n", os.Getpid())
			lifeline() // the same end: the group dies
		}
	}
}

// lifeline ends the child and everything in its group: the parent is gone.
func lifeline() {
	_ = signalGroup(syscall.SIGKILL)
	os.Exit(3) // reached only by a child that does not lead its group
}

// signalGroup sends sig to this process's group, if this process leads it,
// as every child a Manager starts does. A process that does not (a child
// started by hand) would signal whoever started it: it does nothing and
// returns an error.
func signalGroup(sig syscall.Signal) error {
	if syscall.Getpgrp() != os.Getpid() {
		return errors.New("procman: this process does not lead its process group")
	}
	return syscall.Kill(0, sig)
}

// SignalGroup sends sig to the child's process group, which it leads (a
// Manager starts every child so), and so to the child itself and to
// whatever its tasks started. A process that does not lead its group (one
// started by hand) signals nothing and gets an error.
func (c *Child) SignalGroup(sig syscall.Signal) error { return signalGroup(sig) }

// Next waits for the next invocation and returns its payload. It returns
// io.EOF when the parent has no more work for this child (the pipe ended,
// after the parent's goodbye, while nothing was in flight), and another
// error when the stream broke. (A pipe that ends otherwise means the
// parent died: the child kills its group and does not return.)
func (c *Child) Next() ([]byte, error) {
	p, ok := <-c.inv
	return c.got(p, ok)
}

// got is what Next returns for a receive from the invocation channel.
func (c *Child) got(p []byte, ok bool) ([]byte, error) {
	if ok {
		c.settle()
		tracepoint.Mark(tracepoint.ChildTook)
		return p, nil
	}
	if c.err != nil {
		return nil, fmt.Errorf("procman: reading invocations: %w", c.err)
	}
	return nil, io.EOF
}

// NextContext is Next that gives up when ctx ends, returning ctx.Err().
// An invocation that is already waiting is returned even then, so that a
// child told to stop answers what it has taken instead of dropping it.
func (c *Child) NextContext(ctx context.Context) ([]byte, error) {
	select {
	case p, ok := <-c.inv:
		return c.got(p, ok)
	default:
	}
	select {
	case p, ok := <-c.inv:
		return c.got(p, ok)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send writes one frame to the parent. A terminal frame (an answer or a
// failure) ends the invocation in flight. A payload of 1 MiB or more goes
// by vmsplice(2): the pipe holds its pages, not a copy, until the parent
// has read them, so the caller must not change it until then. Next and
// NextContext return the next invocation only once it has been read, so
// a task that answers with a buffer may use that buffer again in its next
// invocation.
func (c *Child) Send(kind wire.Kind, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// The invocation is over before its answer is written: once the
	// parent has the answer it may close the pipe at once (CloseInput on
	// a worker it retires), and the reader must not take that end for
	// the parent's death.
	if kind.Terminal() {
		c.pending.Add(-1)
	}
	if err := c.write(kind, payload); err != nil {
		if kind.Terminal() {
			c.pending.Add(1) // not delivered: still in flight
		}
		return fmt.Errorf("procman: writing a %v frame: %w", kind, err)
	}
	return nil
}

// write writes one frame: a large payload by vmsplice, whose pages the
// child then lends the pipe until the parent has read them (see settle).
func (c *Child) write(kind wire.Kind, payload []byte) error {
	if len(payload) < spliceMin || c.outConn == nil {
		return wire.WriteFrame(c.out, kind, payload)
	}
	// One payload lent at a time: with a pipe larger than 1 MiB the last
	// one could still be in it.
	c.reclaim()
	var h [wire.HeaderSize]byte
	if _, err := c.out.Write(wire.AppendHeader(h[:0], kind, len(payload))); err != nil {
		return err
	}
	c.lent = payload
	n, err := writeSpliced(c.outConn, payload)
	if err != nil && spliceRefused(err) {
		// A sandbox that forbids vmsplice (a seccomp filter, gVisor):
		// the rest goes by write, and so does every payload after it.
		c.outConn = nil
		_, err = c.out.Write(payload[n:])
	}
	return err
}

// settle waits until the parent has read a payload lent to the pipe (see
// write), so that the task that comes next may reuse its memory: the
// caller's code may change a buffer once it has answered with it, and the
// Go runtime may hand out its memory again once nothing refers to it.
func (c *Child) settle() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.reclaim()
}

// reclaim waits until the parent has read the payload lent to the pipe,
// if one is, and forgets it. The caller holds wmu.
func (c *Child) reclaim() {
	if c.lent != nil {
		waitDrained(messageFD)
		c.lent = nil
	}
}

// Queued reports how many invocations the child has read ahead and not
// yet taken with Next, counting one still in the pipe as one. It never
// waits.
func (c *Child) Queued() int {
	n := len(c.inv)
	if n == 0 {
		if pipeHolds(invocationFD) {
			n = 1
		}
	}
	return n
}

// Stopped is closed when the parent asks the child to finish (a stop frame).
func (c *Child) Stopped() <-chan struct{} { return c.stop }

// readAhead is how many invocations the child's reader takes off the pipe
// ahead of the task, so that a parent pipelining work to a reused child
// never finds it waiting on a read.
const readAhead = 64 // strategy.MaxPipeline may not exceed it
