package procman

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/childenv"
	"github.com/procrastinate-go/procrastinate/internal/osproc"
	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

// The variables that the manager sets in a child's environment: the
// cookie that marks a process as a child, with the protocol version as
// its value (an executable from another version refuses to run as a
// child instead of misreading the pipes); the mark of a CPU time limit
// that the parent sets before the first invocation (the child then
// catches SIGXCPU as it takes that invocation); and the nice level that
// the parent sets on the child's group, which the child sets again as it
// takes that invocation (a thread that the Go runtime was starting as the
// parent set it could keep the old level).
const (
	cookieKey   = childenv.Cookie
	cookieValue = "procrastinate-go.v7"
	cpuLimitKey = childenv.CPULimit
	niceKey     = childenv.Nice
)

// The child's protocol fds.
const (
	invocationFD = 3
	messageFD    = 4
	controlFD    = 5
	fileFD       = 6 // the file socket, where large payloads go by file (see frameFile); not on every backend
)

// Serve is the child's entry. In a process that was not started by a
// Manager it returns at once and does nothing. In a child it removes the
// cookie and the marks of a CPU limit and of a nice level from the
// environment (so that the child may
// start children of its own), checks its pipes, closes any other fd it
// inherited, calls run with its end of the pipes, and exits through
// Child.Exit, which first kills what the child's tasks left running: with
// status 0 when run returns nil, else with status 1 after printing run's
// error on stderr. It never returns in a child.
//
// A process started by hand with the cookie but without the pipes exits
// with status 2 and a one-line message on stderr.
func Serve(run func(c *Child) error) {
	v, ok := os.LookupEnv(cookieKey)
	if !ok {
		return
	}
	os.Unsetenv(cookieKey)
	_, limitComing := os.LookupEnv(cpuLimitKey)
	os.Unsetenv(cpuLimitKey)
	niceMark, niceComing := os.LookupEnv(niceKey)
	os.Unsetenv(niceKey)
	if v != cookieValue {
		fail(fmt.Sprintf("started as a child of protocol %q, but this executable speaks %q; parent and child must be the same build", v, cookieValue))
	}
	if err := setOwnLimits(); err != nil {
		fail(err.Error())
	}
	c, err := newChild()
	if err != nil {
		fail(err.Error())
	}
	c.cpuLimit = limitComing || cpuLimited()
	if niceComing {
		n, err := strconv.Atoi(niceMark)
		if err != nil {
			fail(fmt.Sprintf("%s=%q is not a nice level", niceKey, niceMark))
		}
		c.nice = n
	}
	err = run(c)
	tracepoint.Dump()
	if err != nil {
		fmt.Fprintf(os.Stderr, "procrastinate: child %d: %v\n", os.Getpid(), err)
		c.Exit(1)
	}
	c.Exit(0)
}

// tellNoMain tells the parent of a process that was started as a child
// and never called Serve that it will take no task (see ErrNoMain): an
// empty frame on the message pipe, once, if fd 4 is a pipe. Nothing else
// writes to that pipe in such a process, and a frame this small never
// waits for room.
func tellNoMain() {
	noMainOnce.Do(func() {
		if !isPipe(messageFD) {
			return
		}
		frame := appendHeader(nil, frameNoMain, 0)
		for {
			_, err := writeFD(messageFD, frame)
			if err != syscall.EINTR {
				return
			}
		}
	})
}

var noMainOnce sync.Once

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "procrastinate: child %d: %s\n", os.Getpid(), msg)
	os.Exit(2)
}

// Child is a child's end of its pipes: invocations come in through Next,
// replies and notes go out through Reply and Note.
//
// The goroutine that serves invocations reads them itself: Next reads the
// invocation pipe in the calling goroutine, so an invocation that arrives
// wakes that goroutine and no other. Next is meant for that one goroutine
// and must not be called concurrently; Reply, Note, Stopped, Err and Exit
// are safe for concurrent use.
//
// A watcher goroutine reads the control pipe, which carries nothing but
// the parent's stop frames, and whose end tells the child that its parent
// closed it. When that pipe ends while an invocation is in flight (sent
// and not yet replied to: one still in the pipe, untaken, counts once
// Next takes it), or without the goodbye that Process.CloseInput sends
// before it closes the pipes on purpose, the parent is gone: the child
// kills its own process group at once, so that no orphan outlives its
// parent, nor what its tasks started. A plain stop (Process.Stop) is not
// a goodbye: pipes that end after one still mean the parent's death.
//
// The child also hears of its parent's death by signal, which no task can
// take from it by closing fds: on Linux it asks the kernel for a signal
// when its parent dies (PR_SET_PDEATHSIG, with a real-time signal, 40, that
// a task should not use for anything else), and it catches SIGHUP, which the kernel
// sends a stopped child whose group its parent's death orphans. On either,
// when its parent is gone (its parent's pid is no longer the one it had),
// it runs the lifeline. A SIGHUP that comes while the parent lives ends
// the child as it ends a Go program that does not catch it, also when its
// task asked for SIGHUP with signal.Notify; the signal the kernel sends
// when a thread of the parent ends, not the parent, is ignored.
//
// The child is a subreaper (PR_SET_CHILD_SUBREAPER): what its tasks start
// and leave, a daemon whose parent exited after its double fork say,
// becomes its child. Whenever it ends of its own accord (Serve returns,
// Exit, the lifeline), it first kills every descendant it has, in and out
// of its process group. It reaps none of them: the
// zombies of those that end while it lives stay until it exits, when its
// own parent's reaper takes them, so a long-lived worker whose tasks leave
// processes that end holds their zombies (bound its life with the
// dispatcher's MaxTasks or MaxAge). A child cannot act once it is killed
// by a signal it does not catch from outside the library (SIGKILL, the
// kernel's OOM killer), nor when a Go fatal error ends it or its task
// calls os.Exit: then what its tasks started outside its process group
// outlives it.
type Child struct {
	in     *os.File        // the invocation pipe; only Next reads it
	inConn syscall.RawConn // in's, to wait on the runtime's poller
	dec    frameDecoder    // what was read from in and not yet taken
	inErr  error           // why the invocation stream ended; set by Next's caller only
	first  bool            // no invocation taken yet
	// cpuLimit says that the child has a CPU time limit by its first
	// invocation: inherited, or set by the parent (cpuLimitKey).
	cpuLimit bool
	// nice is the nice level the parent set on the child's group, to be
	// set again at the first invocation (niceKey); 0 for none.
	nice int
	// group is the process group the child was started to lead, its pid;
	// 0 when it was started in another's (by hand). parent is its
	// parent's pid as it started.
	group, parent int

	ctl     *os.File      // the control pipe; only watchControl reads it
	ctlDone chan struct{} // closed when the control pipe has ended
	ctlErr  error         // why it ended, if not at an end of file; read after ctlDone
	told    atomic.Bool   // a goodbye came: the end of the pipes is not the parent's death
	ctlEOF  atomic.Bool   // the control pipe has ended

	withdrawMu    sync.Mutex
	withdrawList  []uint64      // invocations the parent withdrew, not yet taken; under withdrawMu
	withdrawReady chan struct{} // receives when withdrawList grows

	out      *os.File
	wmu      sync.Mutex
	stop     chan struct{}
	stopped  sync.Once
	pending  atomic.Int64  // invocations taken and not yet answered
	taken    atomic.Uint64 // invocations taken: the last one's number
	answered uint64        // invocations answered (replied to); guarded by wmu
	sigOnce  sync.Once
	sigs     chan os.Signal  // what catch asked for
	outConn  syscall.RawConn // out's, for vmsplice; nil: plain writes only
	outW     io.Writer       // writes to out; nil: out itself
	lent     []byte          // a payload whose pages the pipe may still hold; guarded by wmu
	filefd   int             // the file socket; -1: none, every payload goes by the pipe
}

func newChild() (*Child, error) {
	fds := []int{invocationFD, messageFD, controlFD}
	for _, fd := range fds {
		if !isPipe(fd) {
			return nil, fmt.Errorf("started as a child (%s is set) but fd %d is not a pipe from a parent; this program is meant to be started by its dispatcher, not by hand", cookieKey, fd)
		}
		// What the task starts must not inherit the protocol pipes.
		closeOnExec(fd)
	}
	files := fileMin < math.MaxInt && isSocket(fileFD) // this backend sends files
	if files {
		closeOnExec(fileFD)
		if err := setNonblock(fileFD); err != nil {
			return nil, fmt.Errorf("setting fd %d non-blocking: %w", fileFD, err)
		}
	}
	closeInherited()
	// Non-blocking, the pipes are waited on by the runtime's poller: a
	// goroutine that waits on one parks without holding a thread.
	for _, fd := range fds {
		if err := setNonblock(fd); err != nil {
			return nil, fmt.Errorf("setting fd %d non-blocking: %w", fd, err)
		}
	}
	c, err := newChildOn(os.NewFile(invocationFD, "invocations"), os.NewFile(messageFD, "messages"), os.NewFile(controlFD, "control"))
	if err != nil {
		return nil, err
	}
	if files {
		c.filefd = fileFD
	}
	becomeSubreaper()
	go c.watchParent()
	return c, nil
}

// watchParent sets up the signals that tell the child of its parent's
// death (see Child). It runs beside the task: the first signal.Notify
// in a process waits for the runtime's signal-mask thread to start, and
// the task need not wait with it. The death signal is set first, then the
// parent's pid (read in newChildOn) looked at again: a parent that died
// before shows as another parent.
func (c *Child) watchParent() {
	sig := parentDeathSignal()
	if sig == 0 && setParentDeathSignal(parentDeathSignal40) == nil {
		sig = parentDeathSignal40
	}
	if sig == parentDeathSignal40 {
		c.catch(parentDeathSignal40)
	}
	c.catch(syscall.SIGHUP)
	if c.parentGone() {
		c.lifeline()
	}
}

// newChildOn makes the Child of the pipes in (invocations), out
// (messages) and ctl (control), all non-blocking, and starts the control
// pipe's watcher.
func newChildOn(in, out, ctl *os.File) (*Child, error) {
	c := &Child{
		in:      in,
		out:     out,
		ctl:     ctl,
		ctlDone: make(chan struct{}),
		stop:    make(chan struct{}),

		withdrawReady: make(chan struct{}, 1),
		first:         true,
		parent:        os.Getppid(),
		filefd:        -1,
	}
	if pid := os.Getpid(); processGroup() == pid {
		c.group = pid
	}
	var err error
	if c.inConn, err = c.in.SyscallConn(); err != nil {
		return nil, fmt.Errorf("the invocation pipe: %w", err)
	}
	if rc, err := c.out.SyscallConn(); err == nil {
		c.outConn, c.outW = rc, &rawWriter{conn: rc}
	}
	// A small invocation's read lands in a page that is already mapped:
	// a spare takes the fault while it waits. (The buffer's other pages
	// are left alone: a fresh child would pay for them and rarely use
	// them.)
	c.dec.Buffer()[0] = 0
	go c.watchControl()
	return c, nil
}

// watchControl reads the control pipe until it ends: a stop frame closes
// Stopped; the end of the pipe without a stop frame before it, or while
// an invocation is in flight, means the parent is gone (see Child). A
// control stream that breaks (a frame of another kind; the same build on
// both sides never sends one) stops the child, and Next returns why.
func (c *Child) watchControl() {
	in := bufio.NewReaderSize(c.ctl, 64)
	for {
		k, payload, err := readFrame(in, 0)
		switch {
		case err == io.EOF:
			// Set before pending is read, and took reads it after it
			// raised pending: one of the two sees the other, so an
			// invocation taken as the pipe ends is in flight for one
			// of them (see took).
			c.ctlEOF.Store(true)
			if c.pending.Load() > 0 || !c.told.Load() {
				c.lifeline()
			}
			close(c.ctlDone)
			return
		case errors.Is(err, io.ErrUnexpectedEOF):
			fmt.Fprintf(os.Stderr, "procrastinate: child %d: the control pipe ended inside a frame; the parent is gone\n", os.Getpid())
			c.lifeline()
		case err != nil:
			c.controlBroke(fmt.Errorf("procman: reading the control pipe: %w", err))
			return
		case k != frameStop:
			c.controlBroke(fmt.Errorf("procman: unexpected %v frame on the control pipe", k))
			return
		}
		if n, ok := withdrawn(payload); ok {
			c.withdraw(n)
			continue
		}
		if isGoodbye(payload) {
			c.told.Store(true)
		}
		c.stopped.Do(func() { close(c.stop) })
	}
}

// withdraw records that the parent withdrew invocation n (see
// tune.Withdraw), for the code that serves.
func (c *Child) withdraw(n uint64) {
	c.withdrawMu.Lock()
	c.withdrawList = append(c.withdrawList, n)
	c.withdrawMu.Unlock()
	select {
	case c.withdrawReady <- struct{}{}:
	default:
	}
}

// takeWithdrawn returns the invocations the parent withdrew since the
// last call.
func (c *Child) takeWithdrawn() []uint64 {
	c.withdrawMu.Lock()
	defer c.withdrawMu.Unlock()
	l := c.withdrawList
	c.withdrawList = nil
	return l
}

// controlBroke records why the control stream broke, where Next and Err
// find it, then stops the child: the loop that serves sees the error,
// not a mere stop.
func (c *Child) controlBroke(err error) {
	c.ctlErr = err
	close(c.ctlDone)
	c.stopped.Do(func() { close(c.stop) })
}

// parentDeathSignal40 is the signal a child takes as news of its
// parent's death: on it, when its parent is gone, the child kills what it
// started and its whole process group, itself included. Every child asks
// the kernel for it (see Child). SIGKILL there would kill the child alone
// and leave what it started running. It is a real-time signal (40), which
// the Go runtime ignores unless asked for, and which a task should not use
// for anything else.
const parentDeathSignal40 = syscall.Signal(40)

// catch makes the child answer sig, one of the signals a child answers
// the same way whatever its task: parentDeathSignal40 and SIGHUP (see
// Child) run the lifeline when the parent is gone; SIGXCPU (when the
// child has a CPU time limit) is said on stderr and runs the lifeline,
// since the Go runtime would otherwise ignore it and run on to the hard
// limit. The first signal.Notify in a process starts two threads, about
// a tenth of a fresh child's CPU at start-up: every child pays it, for
// its parent's death (see watchParent). SIGTERM keeps its default (the
// child dies) unless the code that runs tasks asks for it, as
// the task package's child loop does.
func (c *Child) catch(sig os.Signal) {
	c.sigOnce.Do(func() {
		c.sigs = make(chan os.Signal, 4)
		go c.handleSignals()
	})
	signal.Notify(c.sigs, sig)
}

func (c *Child) handleSignals() {
	for s := range c.sigs {
		switch s {
		case parentDeathSignal40:
			if c.parentGone() {
				c.lifeline()
			}
			// Else a thread of the parent ended, not the parent (the
			// kernel ties the signal to the thread that started the
			// child, and sends it again on each such end).
		case syscall.SIGHUP:
			if c.parentGone() {
				c.lifeline()
			}
			// As if it were not caught: the runtime's default ends
			// the child with it.
			signal.Reset(syscall.SIGHUP)
			_ = killSelf(syscall.SIGHUP)
		case sigXCPU:
			fmt.Fprintf(os.Stderr, "procrastinate: child %d: CPU time limit exceeded (SIGXCPU)\n", os.Getpid())
			c.lifeline() // the same end: the group dies
		}
	}
}

// parentGone reports whether the parent that started the child has died:
// the child's parent is another process now (a subreaper, or init).
func (c *Child) parentGone() bool { return os.Getppid() != c.parent }

// lifeline ends the child and everything it started: the parent is gone.
// It kills every descendant (see killDescendants), then the process
// group the child was started to lead, itself included.
func (c *Child) lifeline() {
	killDescendants("self")
	_ = c.signalGroup(syscall.SIGKILL)
	os.Exit(3) // reached by a child that left its group, or never led one
}

// Exit ends the child with code, as Serve does when its run function
// returns: it first kills every descendant the child has (what its tasks
// started and left, in its group or out of it, see Child), then exits.
// It is for the code that runs tasks when it cannot return to Serve.
func (c *Child) Exit(code int) {
	if hasChildren() {
		killDescendants("self")
	}
	os.Exit(code)
}

// signalGroup sends sig to the process group the child was started to
// lead (a Manager starts every child so), and so to what its tasks
// started in it, and to the child itself while it is in it. A process
// that was not started as a group's leader (one started by hand) signals
// nothing and gets an error. A group left empty (the child moved out of
// it, and started nothing) is no error.
func (c *Child) signalGroup(sig syscall.Signal) error {
	if c.group == 0 {
		return errors.New("procman: this process was not started as the leader of a process group")
	}
	if err := killGroup(c.group, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("procman: signalling process group %d: %w", c.group, err)
	}
	return nil
}

// Next waits for the next invocation and returns its number and its
// payload. Invocations are numbered from 1, in the order the parent sent
// them; a Note for an invocation names it by this number. Next returns
// io.EOF when the parent has no more work for this child (the pipes ended
// after the parent's goodbye, while nothing was in flight), ctx.Err()
// when ctx ends first, and another error when the stream broke. (Pipes
// that end otherwise mean the parent died: the child kills its group and
// does not return.) An invocation that has already reached the child (one
// in the pipe) is returned even once ctx has ended, and one that has begun
// to reach it is waited for, so that a child told to stop answers what it
// was sent before the stop instead of dropping it. (Stop frames come on a
// pipe of their own, and can overtake an invocation that the parent is
// still writing.)
func (c *Child) Next(ctx context.Context) (seq uint64, payload []byte, err error) {
	var unhook func() bool // ends the AfterFunc that wakes a wait when ctx ends
	defer func() {
		if unhook != nil {
			unhook()
		}
	}()
	for c.inErr == nil {
		if err := c.Err(); err != nil {
			c.inErr = err
			continue
		}
		k, p, ok, err := c.dec.Next()
		switch {
		case err != nil:
			c.inErr = fmt.Errorf("procman: reading invocations: %w", err)
			continue
		case ok && k != frameInvocation:
			c.inErr = fmt.Errorf("procman: unexpected %v frame on the invocation pipe", k)
			continue
		case ok:
			return c.took(), p, nil
		}
		var n int
		var errno syscall.Errno
		err = c.inConn.Read(func(fd uintptr) bool {
			// Read here, after the poller was readied for a wait: a read
			// before it could miss the news of bytes that came between.
			n, errno = rawRead(fd, c.dec.Buffer())
			if errno != syscall.EAGAIN {
				return true
			}
			if ctx.Err() != nil && c.dec.Pending() == 0 {
				// Nothing of an invocation has come: give up. Part of
				// one is waited for, rest and all: a stop, which goes
				// on its own pipe, can overtake an invocation that the
				// parent is still writing.
				return true
			}
			if unhook == nil && ctx.Done() != nil {
				// A read deadline in the past ends the wait at once.
				unhook = context.AfterFunc(ctx, func() { _ = c.in.SetReadDeadline(longAgo) })
			}
			return false // wait until the pipe can be read
		})
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Set when a context ended: this one (the next read finds
			// it so), or one of an earlier call, which is no concern
			// of this one.
			_ = c.in.SetReadDeadline(time.Time{})
		case err != nil:
			c.inErr = fmt.Errorf("procman: waiting for invocations: %w", err)
		case errno == syscall.EAGAIN:
			if err := c.Err(); err != nil {
				return 0, nil, err // the stop came from a broken control pipe
			}
			return 0, nil, ctx.Err()
		case errno == syscall.EINTR:
		case errno != 0:
			c.inErr = fmt.Errorf("procman: reading invocations: %w", errno)
		case n == 0:
			c.inErr = c.ended()
		default:
			c.dec.Advance(n)
		}
	}
	return 0, nil, c.inErr
}

// took records that an invocation was taken, and returns its number.
func (c *Child) took() uint64 {
	tracepoint.Mark(tracepoint.ChildRead)
	if c.first {
		// The parent sets the child's limits before it writes the
		// first invocation.
		c.first = false
		if c.cpuLimit {
			c.catch(sigXCPU)
		}
		if c.nice != 0 {
			osproc.SetGroupNice(c.nice)
		}
	}
	c.pending.Add(1)
	if c.ctlEOF.Load() {
		// The parent closed the pipes with this invocation still in
		// one, untaken: it is gone, or it gave up on the child with
		// work in flight. Either way the lifeline, as the watcher would
		// have taken had it seen this invocation in flight.
		c.lifeline()
	}
	c.settle()
	tracepoint.Mark(tracepoint.ChildTook)
	return c.taken.Add(1)
}

// ended is the error for the end of the invocation pipe. The parent closes
// it with the control pipe, after a stop frame there when it says goodbye:
// it waits for the control pipe's watcher to have seen the end of that
// pipe too, and so whether the stop frame came. Without one, or with an
// invocation in flight, the parent is gone and the child does not return
// (see Child).
func (c *Child) ended() error {
	if n := c.dec.Pending(); n > 0 {
		// The pipe ended inside a frame: the parent died while it wrote.
		fmt.Fprintf(os.Stderr, "procrastinate: child %d: the invocation pipe ended inside a frame; the parent is gone (%d bytes of it came)\n", os.Getpid(), n)
		c.lifeline()
	}
	<-c.ctlDone
	if c.ctlErr != nil {
		return c.ctlErr
	}
	if c.pending.Load() > 0 || !c.told.Load() {
		c.lifeline()
	}
	return io.EOF
}

// longAgo is a deadline that has always passed: set on a file, it ends a
// wait on the runtime's poller at once.
var longAgo = time.Unix(1, 0)

// Reply sends the reply to the oldest invocation in flight: the oldest
// that Next returned and that has no reply yet; after it, that invocation
// is answered. kind is the caller's label, which the parent's Handler.Reply
// gets with the payload. The frame carries the invocation's number, which
// the parent checks, so a reply is bound to the invocation it answers,
// and one that a task writes to the pipe by itself cannot pass for the
// reply to another. With no invocation in flight it is an error, and
// nothing is sent. A payload of 1 MiB or more goes by vmsplice(2) on
// Linux: the pipe holds its pages, not a copy, until the parent has read
// them, so the caller must not change it until then. Next returns the
// next invocation only once the parent has read it, so a task that
// replies with a buffer may use that buffer again in its next invocation.
func (c *Child) Reply(kind Kind, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending.Load() <= 0 {
		return errors.New("procman: a reply with no invocation in flight (every invocation taken has its reply)")
	}
	// The invocation is over before its reply is written: once the
	// parent has the reply it may close the pipes at once (CloseInput on
	// a worker it retires), and the control pipe's watcher must not take
	// that end for the parent's death.
	c.pending.Add(-1)
	if err := c.write(frameReply, c.answered+1, kind, payload); err != nil {
		c.pending.Add(1) // not delivered: still in flight
		return fmt.Errorf("procman: writing a reply: %w", err)
	}
	c.answered++
	return nil
}

// Note sends a note about invocation seq, the number Next returned for
// it: the parent's Handler.Note gets kind and payload while that
// invocation is in flight. A note for an invocation that is already
// answered is dropped, and Note returns nil: a goroutine that a task left
// behind cannot speak for the invocation that came next. A note for an
// invocation that Next has not returned, or for one behind another still
// in flight, is an error, and nothing is sent. Note is safe for
// concurrent use, with Reply too; the parent gets notes and replies in
// the order they were sent.
func (c *Child) Note(seq uint64, kind Kind, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case seq == 0 || seq > c.taken.Load():
		return fmt.Errorf("procman: a note for invocation %d, which Next has not returned", seq)
	case seq <= c.answered:
		return nil
	case seq > c.answered+1:
		return fmt.Errorf("procman: a note for invocation %d while invocation %d is in flight before it", seq, c.answered+1)
	}
	if err := c.write(frameNote, seq, kind, payload); err != nil {
		return fmt.Errorf("procman: writing a note: %w", err)
	}
	return nil
}

// write writes one numbered frame of class fc for invocation n: a large
// payload by vmsplice, whose pages the child then lends the pipe until
// the parent has read them (see settle). The caller holds wmu.
func (c *Child) write(fc frameClass, n uint64, kind Kind, payload []byte) error {
	w := c.outW
	if w == nil {
		w = c.out
	}
	if len(payload) >= fileMin && c.filefd >= 0 {
		return c.writeFile(w, fc, n, kind, payload)
	}
	if len(payload) < spliceMin || c.outConn == nil {
		return writeNumberedFrame(w, fc, n, kind, payload)
	}
	// One payload lent at a time: with a pipe larger than 1 MiB the last
	// one could still be in it.
	c.reclaim()
	var h [maxNumberedHead]byte
	head := appendNumberedHeader(h[:0], fc, n, kind, len(payload))
	if _, err := w.Write(head); err != nil {
		return err
	}
	c.lent = payload
	sent, err := writeSpliced(c.outConn, payload)
	if err != nil && spliceRefused(err) {
		// A sandbox that forbids vmsplice (a seccomp filter, gVisor):
		// the rest goes by write, and so does every payload after it.
		c.outConn = nil
		_, err = w.Write(payload[sent:])
	}
	return err
}

// writeFile writes one numbered frame of class fc for invocation n by way
// of a file (see frameFile): the payload goes to a file that no name
// reaches, whose descriptor goes on the file socket. Where the file
// cannot be made or sent, or written to the end, the frame goes by the
// pipe. The file is unlinked as soon as it is made: a child killed in
// between, a few microseconds, leaves it, empty, in the temporary
// directory. The caller holds wmu.
func (c *Child) writeFile(w io.Writer, fc frameClass, n uint64, kind Kind, payload []byte) error {
	f, err := os.CreateTemp("", "procrastinate-payload-*")
	if err != nil {
		return writeNumberedFrame(w, fc, n, kind, payload)
	}
	_ = os.Remove(f.Name())
	defer f.Close()
	if sendFD(c.filefd, int(f.Fd())) != nil {
		return writeNumberedFrame(w, fc, n, kind, payload)
	}
	var h [maxFileHead]byte
	if _, err := w.Write(appendFileFrame(h[:0], fc, n, kind, len(payload))); err != nil {
		return err
	}
	for done := 0; done < len(payload); {
		end := min(done+fileChunk, len(payload))
		if _, err := f.Write(payload[done:end]); err != nil {
			end = 0 // give up: the frame goes by the pipe
		}
		if _, err := w.Write(appendFilePart(h[:0], end)); err != nil {
			return err
		}
		if end == 0 {
			return writeNumberedFrame(w, fc, n, kind, payload)
		}
		done = end
	}
	return nil
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

// queued reports whether an invocation is waiting for Next: 1 when bytes
// of one have been read ahead or wait in the pipe, 0 when none has come
// yet. It never waits. Like Next, it is for the goroutine that serves.
func (c *Child) queued() int {
	holds := c.dec.Pending() > 0
	if !holds {
		_ = c.inConn.Control(func(fd uintptr) { holds = pipeHolds(int(fd)) })
	}
	if holds {
		return 1
	}
	return 0
}

// Stopped is closed when the parent asks the child to finish (a stop
// frame), and when the control pipe breaks (see Err).
func (c *Child) Stopped() <-chan struct{} { return c.stop }

// Err reports why the control pipe broke, if it did: a read error, or a
// frame other than a stop (which parent and child of one build never
// send). The child is stopped then, with nobody left to watch for its
// parent's death; the loop that serves should return this error instead
// of ending as after a plain stop. It is nil otherwise, and never waits.
func (c *Child) Err() error {
	select {
	case <-c.ctlDone:
		return c.ctlErr
	default:
		return nil
	}
}
