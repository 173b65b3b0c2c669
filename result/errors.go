package result

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ChildDeath is the error of a future whose child process ended before it
// answered: it exited, was killed by a signal, or broke the protocol and
// was stopped. Callers pick it out with errors.As.
type ChildDeath struct {
	Task     string         // the task's registered name
	Pid      int            // the child's process id
	ExitCode int            // the exit status if it exited, -1 if a signal killed it
	Signal   syscall.Signal // the signal that killed it, 0 if it exited
	Duration time.Duration  // from start to exit
	Stderr   []byte         // the tail of what the child wrote to its stderr, when captured; may be nil
	Err      error          // a cause beyond the exit, for instance a protocol error; may be nil
	// Limit names the resource limit the child ran into, where the kernel
	// or the runtime tells (SIGXCPU for CPU time; the Go runtime's "out of
	// memory" under an address-space limit); empty otherwise.
	Limit string
	// Cause is the line of the child's stderr that says why it crashed,
	// with the lines that go on saying it (up to a blank line or a
	// goroutine's stack, at most 16 lines and 4 KiB): the first line of
	// the last crash report in all that the child wrote, such as
	// "panic: boom" (a panic in a goroutine that the task started: a
	// panic in the task's own goroutine is a *TaskError instead),
	// "fatal error: concurrent map writes", "runtime: out of memory: ...",
	// "SIGSEGV: segmentation violation", "WARNING: DATA RACE", or this
	// library's own "procrastinate: child N: ...". It is empty when the
	// child wrote no such line, or its stderr was not captured.
	Cause string
	// Stack is the stack of the goroutine that crashed, as the Go runtime
	// dumped it after Cause ("goroutine 7 [running]:" and its frames, at
	// most 32 KiB); empty when no goroutine's stack followed Cause.
	Stack string
}

// stderrTail is about how much of a child's stderr ChildDeath.Error quotes.
const stderrTail = 200

// Error returns a one-line description, such as
//
//	result: task "square": child 1234 died before answering: killed by signal 9 (killed) after 12ms
//
// followed by ": " and Err if Err is not nil, by "; cause: " and Cause
// (at most about 200 bytes, quoted) if Cause is not empty, and by the last
// lines of Stderr (at most about 200 bytes, quoted) if Stderr is not
// empty.
func (e *ChildDeath) Error() string {
	var b strings.Builder
	b.WriteString("result: ")
	if e.Task != "" {
		fmt.Fprintf(&b, "task %q: ", e.Task)
	}
	fmt.Fprintf(&b, "child %d died before answering: ", e.Pid)
	if e.Signal != 0 {
		fmt.Fprintf(&b, "killed by signal %d (%v)", int(e.Signal), e.Signal)
	} else {
		fmt.Fprintf(&b, "exited with code %d", e.ExitCode)
	}
	if e.Duration > 0 {
		fmt.Fprintf(&b, " after %v", roundDuration(e.Duration))
	}
	if e.Limit != "" {
		fmt.Fprintf(&b, " (over its %s limit)", e.Limit)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Cause != "" {
		fmt.Fprintf(&b, "; cause: %q", firstBytes(e.Cause, stderrTail))
	}
	if tail := lastLines(e.Stderr, stderrTail); len(tail) > 0 {
		fmt.Fprintf(&b, "; its stderr ended with: %q", tail)
	}
	return b.String()
}

// Unwrap returns e.Err, so that errors.Is and errors.As see the cause.
func (e *ChildDeath) Unwrap() error {
	return e.Err
}

// roundDuration keeps three or four significant digits: 12ms, 1.234s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// lastLines returns the end of b without trailing white space, at most n
// bytes of it, starting at a line boundary if the cut leaves one, and
// otherwise at a rune boundary.
func lastLines(b []byte, n int) []byte {
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) <= n {
		return b
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
		return b[i+1:]
	}
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return b
}

// firstBytes returns s if it has at most n bytes, else its first n bytes
// or fewer, cut at a rune boundary, and "...".
func firstBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// TaskError is the error of a future whose task ran and failed: it
// returned an error or panicked, or the child did not know its name or
// could not decode its argument. Callers pick it out with errors.As.
type TaskError struct {
	Task     string // the task's registered name
	Pid      int    // the child that ran it
	Message  string // the error's text, or the panic value
	Panicked bool   // whether the task panicked rather than returned an error
	Stack    string // the goroutine stack where it panicked; empty for a returned error
}

// Error returns `result: task "square" failed: <Message>`, or
// `result: task "square" panicked: <Message>` if it panicked. The stack is
// not part of it; read the Stack field.
func (e *TaskError) Error() string {
	how := "failed"
	if e.Panicked {
		how = "panicked"
	}
	if e.Task == "" {
		return fmt.Sprintf("result: task %s: %s", how, e.Message)
	}
	return fmt.Sprintf("result: task %q %s: %s", e.Task, how, e.Message)
}

// CancelError is the error of a future whose context ended (it was
// cancelled, or its deadline or timeout passed) before the task answered.
// A task still queued never starts; a running one is stopped with the
// dispatcher's termination sequence, and the future resolves only once
// its child has answered or ended, so nothing is left running.
// errors.Is(err, context.DeadlineExceeded) and errors.Is(err,
// context.Canceled) work through Unwrap.
type CancelError struct {
	Task    string
	Cause   error            // ctx.Err(), or context.DeadlineExceeded for a timeout
	Started bool             // the task had started in a child
	Pid     int              // the child it ran in, when Started
	Sent    []syscall.Signal // the signals that reached the child, in order; not one sent after it had exited
}

// Error says what ended and what was done, such as
//
//	result: task "crunch" stopped: context deadline exceeded; sent it terminated, then killed
func (e *CancelError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "result: task %q ", e.Task)
	if !e.Started {
		fmt.Fprintf(&b, "never started: %v", e.Cause)
		return b.String()
	}
	fmt.Fprintf(&b, "stopped in child %d: %v", e.Pid, e.Cause)
	for i, s := range e.Sent {
		if i == 0 {
			b.WriteString("; sent it ")
		} else {
			b.WriteString(", then ")
		}
		fmt.Fprintf(&b, "%v (signal %d)", s, int(s))
	}
	return b.String()
}

// Unwrap returns the context's error.
func (e *CancelError) Unwrap() error { return e.Cause }

// RetryError is the error of a future whose task was tried more than once
// (task.WithRetries) and whose every child died before answering. Deaths
// holds what each try died of, in order; errors.As finds the first
// *ChildDeath through Unwrap.
type RetryError struct {
	Task   string
	Deaths []*ChildDeath
}

func (e *RetryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "result: task %q failed %d tries", e.Task, len(e.Deaths))
	for i, d := range e.Deaths {
		fmt.Fprintf(&b, "; try %d: child %d ", i+1, d.Pid)
		if d.Signal != 0 {
			fmt.Fprintf(&b, "killed by signal %d (%v)", int(d.Signal), d.Signal)
		} else {
			fmt.Fprintf(&b, "exited with code %d", d.ExitCode)
		}
		if d.Err != nil {
			fmt.Fprintf(&b, " (%v)", d.Err)
		}
		if d.Cause != "" {
			fmt.Fprintf(&b, " (cause: %q)", firstBytes(d.Cause, stderrTail))
		}
	}
	return b.String()
}

// Unwrap returns the deaths, so that errors.As and errors.Is look into each.
func (e *RetryError) Unwrap() []error {
	errs := make([]error, len(e.Deaths))
	for i, d := range e.Deaths {
		errs[i] = d
	}
	return errs
}
