//go:build unix

package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/osproc"
)

// markEnv is the variable that marks a command's processes: what a
// command starts inherits it, so that what it left can be told as its
// where the system lets a process read another's environment.
const markEnv = "PROCRASTINATE_COMMAND"

var markSeq atomic.Uint64

// newMark returns the value of markEnv for a new command, unique in this
// machine's processes while this one lives.
func newMark() string {
	return strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(markSeq.Add(1), 10)
}

// reap collects p's exit status, waiting for its exit. It names p's pid,
// never any pid.
func (p *proc) reap(ws *unix.WaitStatus, ru *unix.Rusage) error {
	for {
		_, err := unix.Wait4(p.pid, ws, 0, ru)
		if err != unix.EINTR {
			return err
		}
	}
}

// streamGrace is how long a command's streams may stay open once the
// command and its leftovers are gone: only a process that escaped the
// clean-up holds them.
const streamGrace = 2 * time.Second

// run runs c in this process's child, with its retries.
func run(ctx context.Context, c Cmd) (Result, error) {
	if c.Path == "" {
		return Result{}, errors.New("command: Cmd.Path is empty: name the program to run")
	}
	delay := c.RetryDelay
	for try := 1; ; try++ {
		r, err := runOnce(ctx, c)
		if err != nil {
			return r, err
		}
		r.Tries = try
		if r.Success() || try > c.Retries || r.Stopped || r.StartError != "" || ctx.Err() != nil || !retryable(c, r) {
			return r, nil
		}
		removeSpools(r)
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return r, nil
			case <-t.C:
			}
			delay *= 2
		}
	}
}

// retryable reports whether r's status is one that c retries.
func retryable(c Cmd, r Result) bool {
	if r.Signal != 0 || len(c.RetryExitCodes) == 0 {
		return true
	}
	for _, code := range c.RetryExitCodes {
		if code == r.ExitCode {
			return true
		}
	}
	return false
}

func removeSpools(r Result) {
	for _, f := range []string{r.StdoutFile, r.StderrFile} {
		if f != "" {
			_ = os.Remove(f)
		}
	}
}

// lookPath caches the look-ups of program names in PATH: a reused child
// runs the same program many times.
var lookPath sync.Map // name+"\x00"+PATH -> path

func resolve(name string) (string, error) {
	if name == "" || containsSlash(name) {
		return name, nil
	}
	key := name + "\x00" + os.Getenv("PATH")
	if p, ok := lookPath.Load(key); ok {
		return p.(string), nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	lookPath.Store(key, p)
	return p, nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// startFailure is the Result of a command that could not start, with the
// shell's statuses: 127 not found, 126 not runnable.
func startFailure(c Cmd, err error) Result {
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT) {
		code = 127
	}
	return Result{ExitCode: code, StartError: fmt.Sprintf("starting %s: %v", quote(c.Path), err)}
}

// runOnce runs c once: start it in a group of its own, wait for its exit
// (without reaping it where the system can), kill its group, reap it, and
// end what it left.
func runOnce(ctx context.Context, c Cmd) (Result, error) {
	path, argv := "/bin/sh", append([]string{"sh", "-c", c.Path}, c.Args...)
	if !c.Shell {
		var err error
		if path, err = resolve(c.Path); err != nil {
			return startFailure(c, err), nil
		}
		argv = append([]string{c.Path}, c.Args...)
	}
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	mark := newMark()
	env = append(env[:len(env):len(env)], markEnv+"="+mark)
	if c.Limits.set() {
		var err error
		path, argv, env, err = throughShim(path, argv, env, c.Limits)
		if err != nil {
			return Result{}, err
		}
	}
	if c.Dir != "" {
		if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
			return Result{}, fmt.Errorf("command: the directory %q of %s cannot be used: %w", c.Dir, quote(c.Path), notDir(err))
		}
	}
	in, err := inputStream(c.Stdin)
	if err != nil {
		return Result{}, fmt.Errorf("command: a pipe for stdin: %w", err)
	}
	out, err := outputStream(c.Stdout, 1)
	if err != nil {
		in.wait(0)
		return Result{}, fmt.Errorf("command: a pipe for stdout: %w", err)
	}
	errs, err := outputStream(c.Stderr, 2)
	if err != nil {
		in.wait(0)
		out.wait(0)
		return Result{}, fmt.Errorf("command: a pipe for stderr: %w", err)
	}
	attr := &syscall.ProcAttr{
		Dir:   c.Dir,
		Env:   env,
		Files: []uintptr{in.childFd, out.childFd, errs.childFd},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	start := time.Now()
	p, err := startProc(path, argv, attr)
	in.started()
	out.started()
	errs.started()
	if err != nil {
		in.wait(0)
		out.wait(0)
		errs.wait(0)
		return startFailure(c, err), nil
	}
	pid := p.pid
	r := Result{Pid: pid, Start: start}

	// The stopper ends the command when the call's context ends.
	exited := make(chan struct{})
	var stopped bool
	var stopper sync.WaitGroup
	stopper.Add(1)
	go func() {
		defer stopper.Done()
		var timeout <-chan time.Time
		if c.Timeout > 0 {
			t := time.NewTimer(c.Timeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-exited:
			return
		case <-ctx.Done():
		case <-timeout:
		}
		stopped = true
		steps := c.Stop
		if len(steps) == 0 {
			steps = []StopStep{{Signal: syscall.SIGTERM, Wait: 100 * time.Millisecond}}
		}
		for _, s := range steps {
			_ = unix.Kill(-pid, s.Signal)
			t := time.NewTimer(s.Wait)
			select {
			case <-exited:
				t.Stop()
				return
			case <-t.C:
			}
		}
		_ = unix.Kill(-pid, unix.SIGKILL)
	}()

	// Wait for the exit without reaping where the system can: the group
	// keeps its id while its leader is a zombie, so that the kill below
	// cannot reach a stranger. Where it cannot (macOS), the command is
	// reaped first and its group killed at once after: a group with
	// members left keeps its id all the same, and an empty one has
	// nobody to hit unless a new process takes the pid and leads a group
	// of its own in that instant.
	var ws unix.WaitStatus
	var ru unix.Rusage
	peeked, err := p.awaitExit()
	reaped := err != nil || !peeked
	if reaped {
		err = p.reap(&ws, &ru)
	}
	close(exited)
	stopper.Wait()
	r.Duration = time.Since(start)
	r.Stopped = stopped
	_ = unix.Kill(-pid, unix.SIGKILL)
	if !reaped {
		// What the command left (the rest of its group, a daemon) is
		// this process's child by now, or a descendant of one, where
		// this process is a subreaper: finish ends it too.
		r.Leftovers, err = p.finish(&ws, &ru, mark)
	}
	p.release()
	if err != nil {
		return Result{}, fmt.Errorf("command: reaping %s (pid %d): %w", quote(c.Path), pid, err)
	}
	switch {
	case ws.Exited():
		r.ExitCode = ws.ExitStatus()
	case ws.Signaled():
		r.ExitCode, r.Signal = -1, syscall.Signal(ws.Signal())
	}
	r.UserCPU = time.Duration(ru.Utime.Nano())
	r.SystemCPU = time.Duration(ru.Stime.Nano())
	r.MaxRSS = osproc.RSSBytes(int64(ru.Maxrss))

	in.wait(streamGrace)
	out.wait(streamGrace)
	errs.wait(streamGrace)
	var ferr error
	if out.keep != nil {
		r.Stdout, r.StdoutFile, r.StdoutDropped, ferr = out.keep.finish()
	}
	if errs.keep != nil {
		var e error
		r.Stderr, r.StderrFile, r.StderrDropped, e = errs.keep.finish()
		ferr = errors.Join(ferr, e)
	}
	if ferr != nil {
		removeSpools(r)
		return Result{}, fmt.Errorf("command: spooling the output of %s: %w", quote(c.Path), ferr)
	}
	return r, nil
}

func notDir(err error) error {
	if err == nil {
		return syscall.ENOTDIR
	}
	return err
}
