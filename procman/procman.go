package procman

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/sentinel"
)

// Errors returned by the Manager. Compare with errors.Is.
var (
	// ErrNotSetUp is returned by calls made before Setup.
	ErrNotSetUp = sentinel.New("procman.ErrNotSetUp", "procman: manager is not set up (call Setup first)")
	// ErrTornDown is returned by calls made after Teardown.
	ErrTornDown = sentinel.New("procman.ErrTornDown", "procman: manager was torn down")
	// ErrUnsupported is returned by Setup on a system that is not a Unix,
	// and is the cause of CreateProcess's StartError on a Linux without
	// pidfds (before 5.3).
	ErrUnsupported = sentinel.New("procman.ErrUnsupported", "procman: this platform is not supported: children need Linux 5.4 or later (pidfds), macOS or FreeBSD; on an older Linux, build with -tags procrastinate_portable")
	// ErrInputClosed is returned by Process.Send once the child's invocation
	// pipe is closed: the child exited, stopped reading, or CloseInput was called.
	ErrInputClosed = sentinel.New("procman.ErrInputClosed", "procman: the child's invocation pipe is closed")
	// ErrHungUp is the cause in Exit.Err for a child that closed its
	// message pipe and went on running; the manager killed it.
	ErrHungUp = sentinel.New("procman.ErrHungUp", "procman: child closed its message pipe but kept running; it was killed")
	// ErrNoMain is the error of Setup in a process that was started as a
	// child and never called Serve (a program that forgot
	// procrastinate.Main, whose children run its main again), and the
	// cause in Exit.Err for such a child: it told its parent so, and was
	// killed if it did not exit within the hangup wait.
	ErrNoMain = sentinel.New("procman.ErrNoMain", "procman: a child process did not call procrastinate.Main, so it ran the program's main instead of its task; call procrastinate.Main() first thing in main, and in TestMain")
	// ErrProcessDone is returned by Process.Signal when the signal
	// reached no child: the child had already exited.
	ErrProcessDone = sentinel.New("procman.ErrProcessDone", "procman: the child has already exited")
)

// Kind is the caller's label of a reply or a note: the manager carries
// it from the child to the Handler and gives it no meaning. Parent and
// child agree on what each value says.
type Kind uint8

// ProtocolError is the cause in Exit.Err for a child whose message stream
// broke: a frame over the size limit, bytes that are not a frame, a frame
// cut off by the child's exit, or a reply or a note for an invocation
// that was never sent or is not yet due. The manager stops reading such
// a child and kills it; no other child is affected.
type ProtocolError struct {
	Pid int
	Err error // what broke
}

// Error says what broke, and, for a frame over the size limit, which
// option raises the limit.
func (e *ProtocolError) Error() string {
	s := fmt.Sprintf("procman: child %d broke the protocol: %v", e.Pid, e.Err)
	var big *frameTooLargeError
	if errors.As(e.Err, &big) {
		s += "; to take replies that large, raise the limit with dispatcher.WithMaxPayload (procman.WithMaxPayload for a procman.Manager of your own)"
	}
	return s
}

// Unwrap returns what broke.
func (e *ProtocolError) Unwrap() error { return e.Err }

// StartError is returned by CreateProcess when the child could not be
// started (the executable is missing, not executable, or the system is out
// of processes or fds).
type StartError struct {
	Path string
	Err  error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("procman: starting %s: %v", e.Path, e.Err)
}

// Unwrap returns why the start failed.
func (e *StartError) Unwrap() error { return e.Err }

// State is where a child is in its life.
type State int

// The states of a child, in order.
const (
	StateNew       State = iota // created, not yet started
	StateRunning                // started; its exit has not been seen
	StateStopped                // exited; its message pipe may still hold frames
	StateRemovable              // message pipe read to the end, handler told; gone from the manager
)

// String names the state: "new", "running", "stopped", "removable".
func (s State) String() string {
	switch s {
	case StateNew:
		return "new"
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	case StateRemovable:
		return "removable"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Spec says how to start one child. The zero value starts the running
// executable with the parent's environment, working directory, stdout and
// stderr.
type Spec struct {
	// Name labels the child in logs.
	Name string
	// Env holds extra KEY=VALUE entries for the child's environment. One
	// for a variable that the parent's environment has replaces it; of two
	// for one variable, the last counts. The manager's own variables
	// (PROCRASTINATE_CHILD, PROCRASTINATE_CPU_LIMIT, PROCRASTINATE_NICE)
	// are refused: CreateProcess fails.
	Env []string
	// Dir is the child's working directory; empty means the parent's.
	Dir string
	// Stdout and Stderr are the child's fds 1 and 2; nil means the parent's.
	Stdout, Stderr *os.File
	// StderrTail, when above 0, captures the child's stderr through a
	// pipe (Stderr is then not used): the manager keeps its last
	// StderrTail bytes for Exit.Stderr, and passes all of it on to
	// StderrCopy as it arrives. StderrCopy is written on the manager's
	// goroutine: a writer that blocks holds up every child.
	StderrTail int
	StderrCopy io.Writer
	// Rlimits are set on the child (prlimit) as soon as it is started,
	// before its first invocation is written, so they hold for every task
	// it runs.
	Rlimits []Rlimit
	// Nice, when not zero, is the child's nice level, set on its process
	// group (setpriority(PRIO_PGRP), which reaches every thread) before its
	// first invocation is written, and by the child on its group again as
	// it takes that invocation, for a thread its runtime was starting
	// meanwhile. Above 0 lowers its priority; below 0 needs privilege.
	// Zero leaves the level it inherits.
	Nice int
	// Invocation, when non-nil, is sent as the child's first invocation
	// as it starts (see Process.Send), so that it needs no second trip
	// through the manager. The manager keeps the slice until it is
	// written; the caller must not change it.
	Invocation []byte
}

// Rlimit is one resource limit for a child: a unix.RLIMIT_* resource and
// its soft and hard values.
type Rlimit struct {
	Resource int
	Cur, Max uint64
}

// Handler receives what a child sends and its end. Its methods run on the
// manager's goroutine, inside Step or Teardown, and must not block; they
// may call the manager's methods. A payload belongs to the handler.
//
// The manager numbers the invocations it sends to a child from 1 (see
// Process.Send), and the child's replies and notes carry the number of
// the invocation they belong to, which the manager checks: the n-th reply
// answers the n-th invocation, and a reply or a note reaches the handler
// only while its invocation is the oldest one sent and not yet answered.
// One for an invocation already answered (a second reply, a late note) is
// dropped; one for an invocation not yet due, or never sent, is a
// protocol error, and the child is killed (see ProtocolError).
type Handler interface {
	// Reply is called for the child's reply to its oldest invocation in
	// flight, once per invocation, in the order they were sent. After
	// it, that invocation is answered.
	Reply(p *Process, kind Kind, payload []byte)
	// Note is called for a note about the invocation in flight, the
	// oldest sent and not yet answered, before its Reply.
	Note(p *Process, kind Kind, payload []byte)
	// Exited is called once, after the last Reply or Note, when the child
	// has been reaped and its message pipe read to the end.
	Exited(p *Process, e *Exit)
}

// Exit is how a child ended.
type Exit struct {
	Pid      int
	ExitCode int            // the exit status, or -1 when a signal killed it or the status was lost
	Signal   syscall.Signal // the signal that killed it, or 0
	Core     bool           // it dumped core
	Duration time.Duration  // from start to the moment its exit was seen
	// UserTime and SystemTime are the CPU the child (and its reaped
	// descendants) used; MaxRSS is its peak resident set, in bytes, as
	// the kernel's rusage gives it: on Linux never below the parent's
	// peak when the child started, since exec carries the replaced
	// image's peak (a child starts as a copy of its parent) into it.
	UserTime, SystemTime time.Duration
	MaxRSS               int64
	// Stderr is the end of what the child wrote to its stderr, when
	// Spec.StderrTail captured it.
	Stderr []byte
	// NeverRead is set when a child that failed (an exit status other
	// than 0, or a signal) read nothing of what it was sent (Send,
	// Spec.Invocation), whether the manager had written it to the
	// invocation pipe or the child was gone before it could: it never
	// took its first invocation, so no task began in it. It is false when
	// nothing was sent, and when the manager had closed the pipe
	// (Process.CloseInput) before the child ended.
	NeverRead bool
	// Err is set when the manager itself ended the child: a *ProtocolError,
	// or ErrHungUp. It wraps syscall.ECHILD when someone else took the
	// child's exit status (the program ignores SIGCHLD, or waits on any
	// child); ExitCode is -1 and Signal 0 then.
	Err error
}

// Success reports whether the child exited with status 0 and no protocol
// error.
func (e *Exit) Success() bool { return e.ExitCode == 0 && e.Signal == 0 && e.Err == nil }

// String says how the child ended, in one line.
func (e *Exit) String() string {
	var s string
	if e.Signal != 0 {
		s = fmt.Sprintf("child %d killed by signal %d (%v)", e.Pid, int(e.Signal), e.Signal)
		if e.Core {
			s += ", core dumped"
		}
	} else {
		s = fmt.Sprintf("child %d exited with code %d", e.Pid, e.ExitCode)
	}
	s += fmt.Sprintf(" after %v", e.Duration.Round(time.Microsecond))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Option configures a Manager.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger     Logger
	maxPayload int
	path       string
	pipeSize   int
	hangupWait time.Duration
	frameWait  time.Duration
}

// WithLogger sends the manager's log (children started and exited,
// protocol errors) to l: an hclog.Logger or a *slog.Logger, say. The
// default is silent.
func WithLogger(l Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithMaxPayload sets the largest frame payload accepted from a child;
// a larger one is a protocol error. A reply's or a note's frame holds its
// invocation's number and its kind too: 2 to 11 bytes more than its
// payload. The default is 1 GiB.
func WithMaxPayload(n int) Option {
	return optionFunc(func(o *options) { o.maxPayload = n })
}

// WithExecutable starts children from path instead of the running
// executable (os.Executable). The program at path must call Serve. Its
// children get the parent's arguments (os.Args) all the same.
func WithExecutable(path string) Option {
	return optionFunc(func(o *options) { o.path = path })
}

// WithHangupWait sets how long a child that closed its message pipe may go
// on running before the manager kills it (its exit usually follows at
// once: the kernel closes the pipe just before the exit is reported), and
// so may a child that said it never called Serve (see ErrNoMain). The
// default is 2 seconds.
func WithHangupWait(d time.Duration) Option {
	return optionFunc(func(o *options) { o.hangupWait = d })
}

// WithFrameWait sets how long a child may leave a frame unfinished on its
// message pipe before the manager kills it: the time since the manager's
// last read that brought part of it, with the pipe empty. Its Exit.Err is
// then a *ProtocolError. A child that began an answer and
// stopped, and then waited for work, would otherwise hold its task's
// future for ever. The default is 10 seconds; 0 or less turns the limit
// off.
func WithFrameWait(d time.Duration) Option {
	return optionFunc(func(o *options) { o.frameWait = d })
}
