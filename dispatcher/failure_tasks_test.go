package dispatcher_test

// The tasks of the failure, chaos and fuzz tests (failure_test.go,
// chaos_test.go, fuzz_test.go). Like every test task they are defined at
// package level, so that the parent and every child register the same
// names.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/task"
	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

var (
	// waitSignal starts watching the signals in its argument (instead of
	// the Go runtime's default of dying on them), says that it started,
	// and returns an error naming the first signal that comes. It ignores
	// its context, so that only a signal ends it.
	waitSignal = task.Define("dispatcher_test.failure.wait-signal", func(ctx context.Context, a signalArg) (int, error) {
		sigs := make(chan os.Signal, 1)
		for _, sig := range a.Signals {
			signal.Notify(sigs, sig)
		}
		if err := announce(a.Dir); err != nil {
			return 0, err
		}
		sig := <-sigs
		if err := appendTo(filepath.Join(a.Dir, "signal"), sig.String()); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("got %v", sig)
	})
	// waitCtx says that it started and returns its context's error when
	// the context ends: a task that does as it is told.
	waitCtx = task.Define("dispatcher_test.failure.wait-ctx", func(ctx context.Context, dir string) (int, error) {
		if err := announce(dir); err != nil {
			return 0, err
		}
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// marker appends "ran" to the file it is given: the proof that it ran.
	marker = task.Define("dispatcher_test.failure.marker", func(ctx context.Context, path string) (int, error) {
		return 0, appendTo(path, "ran\n")
	})
	// stderrExit writes a.Size bytes of a pattern to its stderr, then the
	// line "pid <pid> exits <code>", and exits with a.Code.
	stderrExit = task.Define("dispatcher_test.failure.stderr-exit", func(ctx context.Context, a stderrArg) (int, error) {
		if _, err := rawFD(2).Write(stderrText(a.Size, os.Getpid(), a.Code)); err != nil {
			return 0, err
		}
		os.Exit(a.Code)
		return 0, nil
	})
	// killSelf sends sig to its own process.
	killSelf = task.Define("dispatcher_test.failure.kill-self", func(ctx context.Context, sig syscall.Signal) (int, error) {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour) // the signal comes
		}
	})
	// hangUp closes its message pipe and goes on running, ignoring its
	// context and SIGTERM: only SIGKILL ends it.
	hangUp = task.Define("dispatcher_test.failure.hang-up", func(ctx context.Context, _ int) (int, error) {
		signal.Ignore(syscall.SIGTERM)
		if err := syscall.Close(messageFD); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour)
		}
	})
	// spin burns CPU until its context ends (a safety net: the CPU limit
	// is meant to end it long before).
	spin = task.Define("dispatcher_test.failure.spin", func(ctx context.Context, _ int) (int, error) {
		x := 0
		for i := 0; ; i++ {
			x = x*31 + i
			if i&0xfffff == 0 && ctx.Err() != nil {
				return x, ctx.Err()
			}
		}
	})
	// allocate allocates n bytes, touches every page, and returns the sum
	// of what it wrote.
	allocate = task.Define("dispatcher_test.failure.allocate", func(ctx context.Context, n int) (int, error) {
		b := make([]byte, n)
		sum := 0
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
			sum += int(b[i])
		}
		return sum, nil
	})
	// niceLevels returns the nice level of every thread of its process,
	// and what getpriority says for the calling thread.
	niceLevels = task.Define("dispatcher_test.failure.nice", func(ctx context.Context, _ int) (niceResult, error) {
		var r niceResult
		prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
		if err != nil {
			return r, err
		}
		// The raw system call returns 20 - nice, so that it is never
		// negative (glibc's wrapper undoes this; Go's does not).
		r.Getpriority = prio
		r.Threads, err = testio.ThreadNiceLevels()
		return r, err
	})
	getwd = task.Define("dispatcher_test.failure.getwd", func(ctx context.Context, _ int) (string, error) {
		return os.Getwd()
	})
	getenv = task.Define("dispatcher_test.failure.getenv", func(ctx context.Context, key string) (string, error) {
		v, ok := os.LookupEnv(key)
		if !ok {
			return "", fmt.Errorf("%s is not set", key)
		}
		return v, nil
	})
	// tries appends the time of each run (in nanoseconds) to a.File, and
	// dies with exit code 5 on the first a.Die runs; after them it returns
	// the number of the run, or, when a.Fail is set, an error.
	tries = task.Define("dispatcher_test.failure.tries", func(ctx context.Context, a triesArg) (int, error) {
		if err := appendTo(a.File, strconv.FormatInt(time.Now().UnixNano(), 10)+"\n"); err != nil {
			return 0, err
		}
		n := len(strings.Fields(readOrEmpty(a.File)))
		if n <= a.Die {
			os.Exit(5)
		}
		if a.Fail {
			return n, fmt.Errorf("failing on run %d", n)
		}
		return n, nil
	})
	// reportAndBlock writes its pid to a file of its own in a.Dir and
	// blocks for ever, ignoring SIGTERM if told to; with a.Grandchild it
	// first starts "sleep 600" in its own process group and writes that
	// pid too. The parent-death test runs it.
	reportAndBlock = task.Define("dispatcher_test.failure.report-and-block", func(ctx context.Context, a blockArg) (int, error) {
		if a.IgnoreTerm {
			signal.Ignore(syscall.SIGTERM)
		}
		pids := []int{os.Getpid()}
		if a.Grandchild {
			cmd := exec.Command("sleep", "600")
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			pids = append(pids, cmd.Process.Pid)
		}
		var b strings.Builder
		for _, p := range pids {
			fmt.Fprintln(&b, p)
		}
		// Written whole under a temporary name, then renamed: the test
		// never reads half a file.
		tmp := filepath.Join(a.Dir, fmt.Sprintf(".pid.%d", os.Getpid()))
		if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
			return 0, err
		}
		if err := os.Rename(tmp, filepath.Join(a.Dir, fmt.Sprintf("pid.%d", os.Getpid()))); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour)
		}
	})
	// termSelf sends its own process SIGTERM, then returns its context's
	// error when the context ends, or "ran on" after 20 s: what a child
	// does with the signal shows whether it catches it.
	termSelf = task.Define("dispatcher_test.failure.term-self", func(ctx context.Context, _ int) (string, error) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Second):
			return "ran on", nil
		}
	})
	// waitSleeper starts "sleep 600" (without a context: only a signal
	// ends it), says that it started, and answers with how the sleeper
	// ended: a task that ignores its own context and waits on what it
	// started.
	waitSleeper = task.Define("dispatcher_test.failure.wait-sleeper", func(ctx context.Context, dir string) (string, error) {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			return "", err
		}
		if err := announce(dir); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return "", err
		}
		return fmt.Sprint(cmd.Wait()), nil
	})
	// leaveBehind starts "sleep 600" in its child's process group, writes
	// its pid and the sleeper's to a file in dir (as reportAndBlock does)
	// and returns: its child goes back to waiting for work, with the
	// sleeper in its group. The parent-death test runs it.
	leaveBehind = task.Define("dispatcher_test.failure.leave-behind", func(ctx context.Context, dir string) (int, error) {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		go func() { _ = cmd.Wait() }() // reaped by this child while it lives
		body := fmt.Sprintf("%d\n%d\n", os.Getpid(), cmd.Process.Pid)
		tmp := filepath.Join(dir, fmt.Sprintf(".pid.%d", os.Getpid()))
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			return 0, err
		}
		return 0, os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("pid.%d", os.Getpid())))
	})
	// chaos does what its argument says; see chaosAct.
	chaos = task.Define("dispatcher_test.chaos", func(ctx context.Context, a chaosArg) (int, error) {
		return a.run(ctx)
	})
	// rawStream writes its argument to the message pipe as it is, then
	// exits with status 0 without answering: whatever a child may send.
	rawStream = task.Define("dispatcher_test.fuzz.raw-stream", func(ctx context.Context, b []byte) (int, error) {
		if _, err := rawFD(messageFD).Write(b); err != nil {
			os.Exit(7)
		}
		os.Exit(0)
		return 0, nil
	})
)

type signalArg struct {
	Dir     string // a gate's directory: the task says there that it started
	Signals []syscall.Signal
}

type stderrArg struct {
	Size int // bytes of pattern before the last line
	Code int // exit code
}

type niceResult struct {
	Getpriority int   // what the raw getpriority(PRIO_PROCESS, 0) returned
	Threads     []int // the nice level of each thread
}

type triesArg struct {
	File string
	Die  int  // die on this many runs
	Fail bool // then return an error instead of a value
}

type blockArg struct {
	Dir        string
	IgnoreTerm bool
	Grandchild bool
}

// stderrText is what stderrExit writes: size bytes of printable pattern
// in lines of 64, then "pid <pid> exits <code>\n".
func stderrText(size, pid, code int) []byte {
	b := make([]byte, 0, size+32)
	for i := 0; i < size; i++ {
		if i%64 == 63 {
			b = append(b, '\n')
		} else {
			b = append(b, 'a'+byte((i*7+i/64)%26))
		}
	}
	return fmt.Appendf(b, "pid %d exits %d\n", pid, code)
}

// announce is the first half of passGate: it writes one byte to the
// gate's "started" FIFO in dir, and does not wait for a token.
func announce(dir string) error {
	started, err := os.OpenFile(filepath.Join(dir, "started"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer started.Close()
	_, err = started.Write([]byte{'s'})
	return err
}

func readOrEmpty(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// chaosAct is what a chaos task does.
type chaosAct int

const (
	actAnswer  chaosAct = iota // return Code
	actError                   // return an error
	actPanic                   // panic
	actExit                    // os.Exit(Code), Code in 1..125
	actSIGKILL                 // kill itself with SIGKILL
	actSIGSEGV                 // kill itself with SIGSEGV (the Go runtime dies of it with a dump)
	actHang                    // ignore its context and SIGTERM and sleep: its deadline and SIGKILL end it
	actGarbage                 // write bytes that are not a frame to the message pipe, then return
	actHangUp                  // close the message pipe and keep running
	actExit0                   // os.Exit(0) without answering
	numActs
)

var actNames = [...]string{"answer", "error", "panic", "exit", "sigkill", "sigsegv", "hang", "garbage", "hangup", "exit0"}

func (a chaosAct) String() string {
	if a >= 0 && int(a) < len(actNames) {
		return actNames[a]
	}
	return fmt.Sprintf("chaosAct(%d)", int(a))
}

type chaosArg struct {
	Act     chaosAct
	Code    int
	Garbage []byte // for actGarbage: its fifth byte is not a frame kind
}

func (a chaosArg) run(ctx context.Context) (int, error) {
	switch a.Act {
	case actAnswer:
		return a.Code, nil
	case actError:
		return 0, errors.New("chaos: an error")
	case actPanic:
		panic("chaos: a panic")
	case actExit, actExit0:
		os.Exit(a.Code)
	case actSIGKILL, actSIGSEGV:
		sig := syscall.SIGKILL
		if a.Act == actSIGSEGV {
			sig = syscall.SIGSEGV
		}
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour)
		}
	case actHang:
		signal.Ignore(syscall.SIGTERM)
		for {
			time.Sleep(time.Hour)
		}
	case actGarbage:
		if _, err := rawFD(messageFD).Write(a.Garbage); err != nil {
			return 0, err
		}
		return a.Code, nil
	case actHangUp:
		if err := syscall.Close(messageFD); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour)
		}
	}
	return 0, fmt.Errorf("chaos: unknown act %d", int(a.Act))
}

// The tasks of FuzzDecodeAnswer: their results are decoded from whatever
// the fuzzer gives as a child's answer. They never run in a child.
var (
	answerInt     = task.Define("dispatcher_test.fuzz.answer-int", answerNothing[int], task.WithCodec(gobcodec.Codec))
	answerString  = task.Define("dispatcher_test.fuzz.answer-string", answerNothing[string], task.WithCodec(gobcodec.Codec))
	answerBytes   = task.Define("dispatcher_test.fuzz.answer-bytes", answerNothing[[]byte], task.WithCodec(gobcodec.Codec))
	answerStruct  = task.Define("dispatcher_test.fuzz.answer-struct", answerNothing[fuzzRecord], task.WithCodec(gobcodec.Codec))
	answerMap     = task.Define("dispatcher_test.fuzz.answer-map", answerNothing[map[string][]int], task.WithCodec(gobcodec.Codec))
	answerJSON    = task.Define("dispatcher_test.fuzz.answer-json", answerNothing[fuzzRecord])
	answerIntJSON = task.Define("dispatcher_test.fuzz.answer-int-json", answerNothing[int])
)

type fuzzRecord struct {
	Name  string
	N     int64
	U     uint8
	OK    bool
	Items []fuzzItem
	Pair  [2]int32
}

type fuzzItem struct {
	Key   string
	Value []byte
}

func answerNothing[R any](ctx context.Context, _ int) (R, error) {
	var zero R
	return zero, nil
}

// forgeAnswer writes a.Frame to the message pipe as it is (a forged
// frame: an answer the child's loop did not send), waits, when a.WaitNext
// is set, until the next invocation has reached its child's pipe, and
// returns a.Value, which the child's loop sends as its answer.
var forgeAnswer = task.Define("dispatcher_test.failure.forge-answer", func(ctx context.Context, a forgeArg) (int, error) {
	if _, err := rawFD(messageFD).Write(a.Frame); err != nil {
		return 0, err
	}
	if !a.WaitNext {
		return a.Value, nil
	}
	// A reused child gets its next call once the parent has taken an
	// answer for this one: the forgery then has a call of another task
	// to shift its answer onto.
	fds := []unix.PollFd{{Fd: invocationFD, Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, 10_000)
		if err != unix.EINTR {
			break
		}
	}
	return a.Value, nil
})

type forgeArg struct {
	Frame    []byte // written to the message pipe first
	WaitNext bool   // then wait for the next invocation
	Value    int    // then returned
}

// invocationFD is the child's end of its invocation pipe (see procman).
const invocationFD = 3
