package cluster

import (
	"errors"
	"fmt"
	"strings"
)

// ErrClosed is the error of a call scheduled on a closed Client, and of a
// call whose result had not come when its Client was closed. Such a call
// may still run on a worker; a call with a key keeps its result for the
// retention period (see Client.Key and Fetch).
var ErrClosed = errors.New("cluster: client closed; the call's result will not reach this client")

// ErrMalformedCall is the cause (in a *DeadLetterError) of a message on
// the calls stream that a worker cannot read: a header that is missing or
// wrong, or a payload over the worker's limit.
var ErrMalformedCall = errors.New("cluster: malformed call")

// ErrUnknownTask is the cause (in a *DeadLetterError) of a call whose task
// no worker that was offered it defines: every worker handed it back (a
// rolling deploy that never finished, or a name defined nowhere).
var ErrUnknownTask = errors.New("cluster: no worker defines the task")

// ErrTooManyDeliveries is the cause (in a *DeadLetterError) of a call that
// was delivered more times than Config.MaxDeliver allows: the workers that
// took it were lost before they answered (a poison call that kills its
// worker, or workers that keep going away).
var ErrTooManyDeliveries = errors.New("cluster: the call was delivered more times than allowed; its workers were lost before they answered")

// WorkerError is the error of every call that a worker answered with an
// error: Worker names the worker, Err is what the call ended with there,
// rebuilt in this process. Through Unwrap, errors.As finds the library's
// error types in Err (*result.TaskError, *result.ChildDeath,
// *result.RetryError, *result.CancelError, *DeadLetterError) and errors.Is
// finds its sentinels (dispatcher.ErrClosed, dispatcher.ErrKilled,
// dispatcher.ErrInactive, context.Canceled, ...).
type WorkerError struct {
	Worker string
	Err    error
}

// Error returns "cluster: worker W: " followed by Err's text.
func (e *WorkerError) Error() string {
	return fmt.Sprintf("cluster: worker %s: %v", e.Worker, e.Err)
}

// Unwrap returns Err.
func (e *WorkerError) Unwrap() error { return e.Err }

// DeadLetterError is the error of a call that was moved to the dead-letter
// stream and will not run: it was malformed (ErrMalformedCall), no worker
// defined its task (ErrUnknownTask), or its workers were lost too often
// (ErrTooManyDeliveries). The message itself stays in the dead-letter
// stream, with its headers and a Procrastinate-Reason header, for
// Config.DeadLetterTTL.
type DeadLetterError struct {
	Task       string // the call's task, when its message said
	ID         string // the call's id
	Deliveries int    // how many times it was delivered
	Reason     string // what was wrong, in words
	Cause      error  // ErrMalformedCall, ErrUnknownTask or ErrTooManyDeliveries
}

// Error says which call went to the dead letters, and why.
func (e *DeadLetterError) Error() string {
	var b strings.Builder
	b.WriteString("cluster: ")
	if e.Task != "" {
		fmt.Fprintf(&b, "task %q ", e.Task)
	} else {
		b.WriteString("a call ")
	}
	fmt.Fprintf(&b, "was moved to the dead-letter stream after %d deliveries: %s", e.Deliveries, e.Reason)
	return b.String()
}

// Unwrap returns Cause.
func (e *DeadLetterError) Unwrap() error { return e.Cause }

// remoteError is an error from another process that is none of the known
// types: its text, and the sentinels that errors.Is matched over there.
type remoteError struct {
	msg   string
	is    []error
	cause error // what it wrapped, rebuilt; may be nil
}

func (e *remoteError) Error() string { return e.msg }

// Unwrap returns what the error wrapped, rebuilt.
func (e *remoteError) Unwrap() error { return e.cause }

// Is reports whether target is one of the sentinels the error matched
// where it was made.
func (e *remoteError) Is(target error) bool {
	for _, s := range e.is {
		if s == target {
			return true
		}
	}
	return false
}

// wireError is the wire form of an error: a kind, the fields of the kind,
// and the names of the sentinels that errors.Is matched. It is encoded as
// JSON, and only ever grows: a reader ignores what it does not know.
type wireError struct {
	Kind    string `json:"kind"` // one of the kind* constants
	Message string `json:"message,omitempty"`
	Task    string `json:"task,omitempty"`

	// *result.ChildDeath, *result.TaskError, *result.CancelError
	Pid        int    `json:"pid,omitempty"`
	ExitCode   int    `json:"exit_code,omitempty"`
	Signal     int    `json:"signal,omitempty"`
	DurationNs int64  `json:"duration_ns,omitempty"`
	Stderr     []byte `json:"stderr,omitempty"`
	Limit      string `json:"limit,omitempty"`
	Panicked   bool   `json:"panicked,omitempty"`
	Stack      string `json:"stack,omitempty"`
	Started    bool   `json:"started,omitempty"`
	Sent       []int  `json:"sent,omitempty"`

	// *result.RetryError
	Deaths []*wireError `json:"deaths,omitempty"`
	// the wrapped cause: ChildDeath.Err, CancelError.Cause, DeadLetterError.Cause
	Cause *wireError `json:"cause,omitempty"`

	// *DeadLetterError
	ID         string `json:"id,omitempty"`
	Deliveries int    `json:"deliveries,omitempty"`
	Reason     string `json:"reason,omitempty"`

	// Is names the sentinels that errors.Is matched (see sentinels).
	Is []string `json:"is,omitempty"`
}

// The kinds of wireError.
const (
	kindPlain  = "plain"
	kindTask   = "task"
	kindDeath  = "death"
	kindRetry  = "retry"
	kindCancel = "cancel"
	kindDead   = "dead"
)
