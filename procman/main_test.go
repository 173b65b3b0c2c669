package procman_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// Environment variables that make the re-executed test binary something
// other than a plain child. Each is set only in the Spec.Env (or the
// os/exec environment) of the process it is meant for.
const (
	// envExitEarly=N: exit with status N before Serve, without reading
	// a byte of the invocation pipe.
	envExitEarly = "PROCMAN_TEST_EXIT_EARLY"
	// envSleepEarly=1: sleep before Serve, never reading the invocation
	// pipe, until the parent is gone or kills it.
	envSleepEarly = "PROCMAN_TEST_SLEEP_EARLY"
	// envParent=MODE: act as a parent that starts children with a
	// Manager (see runParent).
	envParent = "PROCMAN_TEST_PARENT"
	// envExample=1: serve as the child of Example (see upper).
	envExample = "PROCMAN_TEST_EXAMPLE"
)

// TestMain serves as the child when the test binary is re-executed by a
// Manager: the invocation's task name picks a helper from childTasks.
func TestMain(m *testing.M) {
	if runtime.GOOS != "linux" {
		fmt.Println("procman runs children on Linux only (pidfds, epoll, eventfd): tests skipped")
		os.Exit(0)
	}
	if v, ok := os.LookupEnv(envExitEarly); ok {
		code, _ := strconv.Atoi(v)
		os.Exit(code)
	}
	if _, ok := os.LookupEnv(envSleepEarly); ok {
		blockForever(true)
	}
	procman.EncodeInvocation = func(task string, arg []byte, last bool) []byte {
		return wire.AppendInvocation(nil, &wire.Invocation{Task: task, Arg: arg, Last: last})
	}
	if _, ok := os.LookupEnv(envExample); ok {
		procman.Serve(upper)
	}
	procman.Serve(serveChild)
	if mode, ok := os.LookupEnv(envParent); ok {
		os.Unsetenv(envParent)
		runParent(mode)
	}
	// Under -race every process sleeps 1 s at exit without this; the
	// children inherit it.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	goleak.VerifyTestMain(m)
}

// childTasks are what a test child can be asked to do. Each gets the
// invocation and the endpoint; a nil error with no answer sent means the
// helper answered itself or meant not to. Benchmarks add theirs (named
// "bench-...") from an init function.
var childTasks = map[string]func(c *procman.Child, seq uint64, inv *wire.Invocation) error{
	"echo": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		return c.Reply(wire.KindAnswer, inv.Arg)
	},
	// nice answers with the nice level of each of its threads, in one
	// line.
	"nice": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		levels, err := testio.ThreadNiceLevels()
		if err != nil {
			return err
		}
		return c.Reply(wire.KindAnswer, []byte(strings.Trim(fmt.Sprint(levels), "[]")))
	},
	"exit": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		code, _ := strconv.Atoi(string(inv.Arg))
		os.Exit(code)
		return nil
	},
	// answer-exit answers with its argument and exits at once, without
	// returning to Serve.
	"answer-exit": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if err := c.Reply(wire.KindAnswer, inv.Arg); err != nil {
			return err
		}
		os.Exit(0)
		return nil
	},
	// block reports "ready" with a progress frame (not an answer: the
	// invocation stays in flight) and blocks. The argument holds words:
	// "ignore-term" ignores SIGTERM first; "no-watch" leaves out the
	// safety net that ends the helper when its parent is gone (so that a
	// test of the lifeline tests the lifeline).
	"block": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		opts := string(inv.Arg)
		if strings.Contains(opts, "ignore-term") {
			signal.Ignore(syscall.SIGTERM)
		}
		if err := c.Note(seq, wire.KindProgress, []byte("ready")); err != nil {
			return err
		}
		blockForever(!strings.Contains(opts, "no-watch"))
		return nil
	},
	// getenv answers how it sees the cookie: in its own environment, and
	// in that of a process it starts.
	"getenv": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		v, ok := os.LookupEnv(string(inv.Arg))
		out, err := exec.Command("sh", "-c", `echo "${`+string(inv.Arg)+`-unset}"`).Output()
		if err != nil {
			return err
		}
		return c.Reply(wire.KindAnswer, fmt.Appendf(nil, "%v %q %s", ok, v, strings.TrimSpace(string(out))))
	},
	// fds answers with one line per open fd: number, target, and
	// whether it is close-on-exec.
	"fds": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		return c.Reply(wire.KindAnswer, []byte(listFDs()))
	},
	"pgid": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		return c.Reply(wire.KindAnswer, fmt.Appendf(nil, "%d %d", os.Getpid(), syscall.Getpgrp()))
	},
	// grandchild starts "sleep 60", reports its pid with a progress
	// frame, then blocks if the argument is "block" or else exits 0
	// leaving the grandchild behind.
	"grandchild": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			return err
		}
		if err := c.Note(seq, wire.KindProgress, []byte(strconv.Itoa(cmd.Process.Pid))); err != nil {
			return err
		}
		if string(inv.Arg) == "block" {
			blockForever(true)
		}
		os.Exit(0)
		return nil
	},
	// leave-group moves the child into its parent's process group,
	// reports its pid with a progress frame, and blocks.
	"leave-group": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		pgid, err := syscall.Getpgid(os.Getppid())
		if err != nil {
			return err
		}
		if err := syscall.Setpgid(0, pgid); err != nil {
			return err
		}
		if err := c.Note(seq, wire.KindProgress, []byte(strconv.Itoa(os.Getpid()))); err != nil {
			return err
		}
		blockForever(true)
		return nil
	},
	// kill-self sends itself the signal whose number is the argument.
	"kill-self": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		sig, _ := strconv.Atoi(string(inv.Arg))
		if err := syscall.Kill(os.Getpid(), syscall.Signal(sig)); err != nil {
			return err
		}
		blockForever(true)
		return nil
	},
	// burn uses 50 ms of user CPU time, then answers.
	"burn": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		x := uint64(1)
		for {
			for i := 0; i < 1e6; i++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
				return err
			}
			if time.Duration(ru.Utime.Nano()) >= 50*time.Millisecond {
				break
			}
		}
		return c.Reply(wire.KindAnswer, fmt.Append(nil, x))
	},
	// alloc allocates 64 MiB, touches every page, then answers.
	"alloc": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		b := make([]byte, 64<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		err := c.Reply(wire.KindAnswer, []byte("touched"))
		runtime.KeepAlive(b)
		return err
	},
	// big answers with a payload of the size given as argument.
	"big": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		n, _ := strconv.Atoi(string(inv.Arg))
		return c.Reply(wire.KindAnswer, make([]byte, n))
	},
	// garbage writes bytes that are not a frame on the message pipe and
	// blocks: "this" as a length and ' ' as a kind, which is unknown.
	"garbage": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if _, err := syscall.Write(4, []byte("this is not a frame")); err != nil {
			return err
		}
		blockForever(true)
		return nil
	},
	// stall begins an answer of 100 bytes, writes 10 of them, and blocks;
	// with the argument "hangup" it closes its message pipe first (as
	// hangup does).
	"stall": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if _, err := syscall.Write(4, append(procman.AppendHeader(nil, procman.FrameReply, 100), make([]byte, 10)...)); err != nil {
			return err
		}
		if string(inv.Arg) == "hangup" {
			if err := closeMessagePipe(); err != nil {
				return err
			}
		}
		blockForever(true)
		return nil
	},
	// claim writes the header of an answer whose payload it says is as
	// many bytes as its argument, and no more of it, and blocks.
	"claim": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		n, _ := strconv.Atoi(string(inv.Arg))
		if _, err := syscall.Write(4, procman.AppendHeader(nil, procman.FrameReply, n)); err != nil {
			return err
		}
		blockForever(true)
		return nil
	},
	// trickle answers "0123456789" ten times over, a piece every 40 ms
	// after the header, with raw writes, and ends. It must be its
	// child's first invocation (its answer is numbered 1).
	"trickle": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		piece := []byte("0123456789")
		if _, err := syscall.Write(4, procman.AppendNumberedHead(nil, procman.FrameReply, 1, wire.KindAnswer, 10*len(piece))); err != nil {
			return err
		}
		for range 10 {
			time.Sleep(40 * time.Millisecond)
			if _, err := syscall.Write(4, piece); err != nil {
				return err
			}
		}
		return nil
	},
	// hangup closes its message pipe (closeMessagePipe) and runs on, or
	// with the argument "exit" exits 0 soon after.
	"hangup": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if err := closeMessagePipe(); err != nil {
			return err
		}
		if string(inv.Arg) == "exit" {
			time.Sleep(10 * time.Millisecond)
			os.Exit(0)
		}
		blockForever(true)
		return nil
	},
	// truncate writes the header of a 100-byte answer and 10 bytes of
	// it, and exits.
	"truncate": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		frame := append(procman.AppendHeader(nil, procman.FrameReply, 100), make([]byte, 10)...)
		if _, err := syscall.Write(4, frame); err != nil {
			return err
		}
		os.Exit(0)
		return nil
	},
	// forge writes its argument to the message pipe as it is (frames
	// that the Child did not send: forged ones), and then answers
	// "real".
	"forge": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if _, err := syscall.Write(4, inv.Arg); err != nil {
			return err
		}
		return c.Reply(wire.KindAnswer, []byte("real"))
	},
	// reply-then-write answers "real", then writes its argument to the
	// message pipe, raw, as a goroutine that its task left behind would.
	"reply-then-write": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if err := c.Reply(wire.KindAnswer, []byte("real")); err != nil {
			return err
		}
		_, err := syscall.Write(4, inv.Arg)
		return err
	},
	// forge-block writes its argument to the message pipe as forge does,
	// and blocks.
	"forge-block": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		if _, err := syscall.Write(4, inv.Arg); err != nil {
			return err
		}
		blockForever(true)
		return nil
	},
	// stderr writes its argument on stderr and exits 0.
	"stderr": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		_, err := os.Stderr.Write(inv.Arg)
		return err
	},
	// limits answers "MSGQUEUE-soft MSGQUEUE-hard nice", its resource
	// limit and nice level as the kernel has them.
	"limits": func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(rlimitMsgqueue, &rl); err != nil {
			return err
		}
		s, err := testio.ReadStat(os.Getpid())
		if err != nil {
			return err
		}
		return c.Reply(wire.KindAnswer, fmt.Appendf(nil, "%d %d %d", rl.Cur, rl.Max, s.Nice))
	},
	// noop does nothing and answers nothing.
	"noop": func(c *procman.Child, seq uint64, inv *wire.Invocation) error { return nil },
}

// closeMessagePipe closes a test child's message pipe by putting
// /dev/null on fd 4, so that the number stays valid for the Child.
func closeMessagePipe() error {
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(null)
	return unix.Dup2(null, 4)
}

func serveChild(c *procman.Child) error {
	for {
		seq, p, err := c.Next(context.Background())
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		inv, err := wire.DecodeInvocation(p)
		if err != nil {
			return err
		}
		f := childTasks[inv.Task]
		if f == nil {
			return fmt.Errorf("no test task %q", inv.Task)
		}
		if err := f(c, seq, inv); err != nil {
			return err
		}
		if inv.Last {
			return nil
		}
	}
}

// rlimitMsgqueue is RLIMIT_MSGQUEUE: a limit the Go runtime leaves alone
// (it raises RLIMIT_NOFILE at start), so a test sees what the parent set.
const rlimitMsgqueue = 12

// blockForever sleeps for good. With watch set it exits when its parent
// is gone, so that a test that dies does not leave it running forever;
// without, only a signal (or the Child's lifeline) ends it.
func blockForever(watch bool) {
	ppid := os.Getppid()
	for {
		time.Sleep(50 * time.Millisecond)
		if watch && os.Getppid() != ppid {
			os.Exit(99)
		}
	}
}

// listFDs lists this process's fds with raw system calls (the os package
// could open fds of its own for the poller): "fd target cloexec" lines,
// leaving out the fd that reads the directory.
func listFDs() string {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "error " + err.Error()
	}
	defer syscall.Close(dir)
	var names []string
	buf := make([]byte, 16<<10)
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	var b strings.Builder
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dir {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + name)
		flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		fmt.Fprintf(&b, "%d %s %v\n", fd, target, e == 0 && flags&syscall.FD_CLOEXEC != 0)
	}
	return b.String()
}

// runParent acts as a parent process for TestChildrenDieWithTheirParent:
// it starts children with a Manager, waits until the busy ones say they
// are ready, prints "pids P1 P2 ..." on stdout and steps until it is
// killed.
func runParent(mode string) {
	var opts []procman.Option
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "parent:", err)
		os.Exit(1)
	}
	m := procman.New(opts...)
	if err := m.Setup(); err != nil {
		fail(err)
	}
	h := &parentHandler{}
	specs := []procman.Spec{
		{Name: "busy", Invocation: wire.AppendInvocation(nil, &wire.Invocation{Task: "block", Arg: []byte("no-watch"), Last: true})},
		{Name: "busy-ignoring-sigterm", Invocation: wire.AppendInvocation(nil, &wire.Invocation{Task: "block", Arg: []byte("no-watch ignore-term"), Last: true})},
		{Name: "idle"}, // waits for its first invocation
	}
	var pids []string
	for _, s := range specs {
		p, err := m.CreateProcess(s, h)
		if err != nil {
			fail(err)
		}
		pids = append(pids, strconv.Itoa(p.Pid()))
	}
	for h.ready < 2 {
		if err := m.Step(); err != nil {
			fail(err)
		}
		if h.exited {
			fail(errors.New("a child exited early"))
		}
	}
	fmt.Printf("pids %s\n", strings.Join(pids, " "))
	for {
		if err := m.Step(); err != nil {
			fail(err)
		}
	}
}

type parentHandler struct {
	ready  int
	exited bool
}

// Reply and Note implement procman.Handler: each records like Message.
func (h *parentHandler) Reply(p *procman.Process, k procman.Kind, payload []byte) {
	h.Message(p, k, payload)
}

func (h *parentHandler) Note(p *procman.Process, k procman.Kind, payload []byte) {
	h.Message(p, k, payload)
}

func (h *parentHandler) Message(p *procman.Process, k procman.Kind, payload []byte) {
	if k == wire.KindProgress && string(payload) == "ready" {
		h.ready++
	}
}

func (h *parentHandler) Exited(p *procman.Process, e *procman.Exit) { h.exited = true }
