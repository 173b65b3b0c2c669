package command

import (
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Cmd is a program to run, and what to keep of its output. The zero value
// of each field but Path does what its comment says.
type Cmd struct {
	// Path is the program: a path, or a name looked up in PATH in the
	// child that starts it. With Shell, it is a shell command line.
	Path string
	// Args are the arguments after the program's name.
	Args []string
	// Env is the whole environment of the command when not nil; nil gives
	// it the environment of the child that starts it (the parent's).
	Env []string
	// Dir is the working directory; empty means the child's (the parent's).
	Dir string
	// Stdin is the command's standard input; nil gives it /dev/null.
	Stdin []byte
	// Stdout is what to keep of the standard output; the zero Output
	// discards it.
	Stdout Output
	// Stderr is what to keep of the standard error; the zero Output keeps
	// its last 8 KiB.
	Stderr Output
	// Shell runs Path as a command line with /bin/sh -c (Args, when given,
	// become $0 and the positional parameters). Only when asked: without
	// it, no shell is started and nothing in Path or Args is interpreted.
	Shell bool
	// Retries is how many more times the command runs after it exits
	// with a failing status; RetryExitCodes, when not empty, are the
	// only statuses that count as failing for it (a signal always does).
	// The first retry waits RetryDelay, each further one twice as long.
	// All tries run within the call's timeout.
	Retries        int
	RetryExitCodes []int
	RetryDelay     time.Duration
	// Timeout, when not zero, stops each try that runs longer (with the
	// Stop sequence); its Result then says Stopped. Unlike the call's
	// task.WithTimeout, it leaves the child that runs commands alone, and
	// the future resolves with the Result.
	Timeout time.Duration
	// Stop is the sequence of signals sent to the command's process group
	// when its call is cancelled or its timeout passes: each signal, then
	// a wait of its Wait, until the command has exited. SIGKILL follows
	// the last step. Empty means SIGTERM, a wait of 100 ms, then SIGKILL.
	// The dispatcher's grace period (dispatcher.WithGracePeriod) bounds
	// the whole sequence.
	Stop []StopStep
	// Limits bound the command itself; the zero value sets none.
	Limits Limits
}

// StopStep is a step of [Cmd.Stop]: a signal, and how long to wait for
// the command to exit before the next step.
type StopStep struct {
	Signal syscall.Signal
	Wait   time.Duration
}

// Limits bound the command's process (and what it starts, which inherits
// them). Setting any costs one more exec of the program's own binary
// before the command's, which applies them.
type Limits struct {
	// AddressSpace is RLIMIT_AS in bytes; 0 means none.
	AddressSpace uint64
	// CPUTime is RLIMIT_CPU, rounded up to whole seconds; 0 means none.
	CPUTime time.Duration
	// Nice is the nice level, added to the one the command inherits; 0
	// leaves it.
	Nice int
}

func (l Limits) set() bool { return l != Limits{} }

// OutputMode says what to keep of a stream of the command.
type OutputMode int

const (
	// Default is the mode of the zero Output: Discard for Stdout, a tail
	// of 8 KiB for Stderr.
	Default OutputMode = iota
	// Discard sends the stream to /dev/null.
	Discard
	// Tail keeps the last Size bytes.
	Tail
	// All keeps all of it, in memory.
	All
	// Spool keeps all of it: the first Size bytes in memory, and all of
	// it in a file of Dir (the system's temporary folder when empty) once
	// it grows past Size. The file is the caller's to remove.
	Spool
	// Inherit passes the stream on: the command writes to the stdout or
	// stderr of the child that starts it, which are the parent's.
	Inherit
)

// Output is what to keep of one stream.
type Output struct {
	Mode OutputMode
	// Size is the tail's size for Tail, and how much stays in memory for
	// Spool (64 KiB when 0).
	Size int
	// Dir is where Spool writes its file.
	Dir string
}

// defaultStderrTail is what the zero Output keeps of stderr.
const defaultStderrTail = 8 << 10

// Result is what a command did.
type Result struct {
	// Pid is the command's process id.
	Pid int
	// ExitCode is its exit status, or -1 when a signal ended it.
	ExitCode int
	// Signal is the signal that ended it, 0 if it exited.
	Signal syscall.Signal
	// Stdout holds what Cmd.Stdout kept (for Spool, the first Size bytes
	// when StdoutFile is set).
	Stdout []byte
	// StdoutFile is the file Spool wrote all of stdout to, once stdout
	// outgrew memory; empty otherwise.
	StdoutFile string
	// StdoutDropped is how many bytes of stdout a Tail left out.
	StdoutDropped int64
	// Stderr holds what Cmd.Stderr kept: by default its last 8 KiB.
	Stderr []byte
	// StderrFile is Spool's file for stderr, as StdoutFile.
	StderrFile    string
	StderrDropped int64
	Start         time.Time     // when the last try started
	Duration      time.Duration // from the last try's start to its exit
	UserCPU       time.Duration // user CPU of the last try, and of what it waited for
	SystemCPU     time.Duration // system CPU, likewise
	MaxRSS        int64         // peak resident set in bytes, of the largest process the try waited for
	// Tries is how many times the command ran.
	Tries int
	// Stopped says that Cmd.Timeout, or the call's cancellation or
	// timeout, stopped it.
	Stopped bool
	// Leftovers counts the processes killed after the command exited:
	// the rest of its group, and what it left to the child (a daemon).
	// It is 0 on macOS, which has no subreaper: the group is killed there,
	// but not counted.
	Leftovers int
	// StartError says why the command could not start, as the shell
	// would: ExitCode is then 127 when the program is not found and 126
	// when it cannot be run.
	StartError string
}

// Success reports whether the command exited with status 0.
func (r Result) Success() bool { return r.ExitCode == 0 && r.Signal == 0 }

// describe says how the command ended: "exit status 3", "killed by signal 9 (killed)".
func (r Result) describe() string {
	if r.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%v)", int(r.Signal), r.Signal)
	}
	return fmt.Sprintf("exit status %d", r.ExitCode)
}

// ExitError is the error of a command that exited with a status other
// than 0, or that a signal ended. It carries the whole Result: the
// status, the output kept, the stderr tail, the cost.
type ExitError struct {
	Cmd    string // the program and its arguments, as one line
	Result Result
}

// Error says which command failed and how, with the end of its stderr.
func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "command: %s: %s", e.Cmd, e.Result.describe())
	if e.Result.Tries > 1 {
		fmt.Fprintf(&b, " (after %d tries)", e.Result.Tries)
	}
	if e.Result.StartError != "" {
		fmt.Fprintf(&b, ": %s", e.Result.StartError)
	} else if tail := lastLine(e.Result.Stderr, 200); tail != "" {
		fmt.Fprintf(&b, ": %q", tail)
	}
	return b.String()
}

// lastLine returns the last non-empty line of b, cut to at most n bytes.
func lastLine(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// String is the command as one line, for errors and logs.
func (c Cmd) String() string {
	var b strings.Builder
	if c.Shell {
		b.WriteString("sh -c ")
	}
	b.WriteString(quote(c.Path))
	for _, a := range c.Args {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	return b.String()
}

func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>*?()[]{}!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
