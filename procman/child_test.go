package procman_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

const cookie = "PROCRASTINATE_CHILD"

func TestChildTakesTheCookieOutOfItsEnvironment(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	_, c := start(t, m, procman.Spec{Invocation: work("getenv", cookie, true)})
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	// Not in its own environment, nor in that of a process it starts.
	require.Equal(t, [][]byte{[]byte(`false "" unset`)}, c.answers())
}

// The mark of a CPU limit to come is for the child's start only: a task,
// and what it starts, do not see it.
func TestChildTakesTheCPULimitMarkOutOfItsEnvironment(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	spec := procman.Spec{
		Rlimits:    []procman.Rlimit{{Resource: unix.RLIMIT_CPU, Cur: 60, Max: 61}},
		Invocation: work("getenv", "PROCRASTINATE_CPU_LIMIT", true),
	}
	_, c := start(t, m, spec)
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	require.Equal(t, [][]byte{[]byte(`false "" unset`)}, c.answers())
}

// A CPU limit that the child inherits, which its parent did not set
// through Spec.Rlimits, is caught too: SIGXCPU is said on stderr and
// ends the child's group, where the Go runtime would ignore it.
func TestAnInheritedCPULimitIsCaught(t *testing.T) {
	leakcheck.Check(t)
	var old unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_CPU, &old))
	limit := unix.Rlimit{Cur: 1 << 30, Max: old.Max} // seconds: never reached
	if old.Max < limit.Cur {
		t.Skipf("the hard CPU limit (%d s) is too low to set a soft one this test never reaches", old.Max)
	}
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_CPU, &limit))
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_CPU, &old) }) // should the start fail
	m := newManager(t)
	p, c := start(t, m, procman.Spec{StderrTail: 200, Invocation: work("block", "", true)})
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_CPU, &old)) // the child has it now
	stepUntil(t, m, func() bool { return c.heard(wire.KindProgress) })
	require.NoError(t, p.Signal(unix.SIGXCPU))
	e := waitExit(t, m, c)
	require.Equal(t, unix.SIGKILL, e.Signal, "%v", e)
	require.Contains(t, string(e.Stderr), "CPU time limit exceeded (SIGXCPU)")
}

func TestExtraEnvironmentReachesTheChild(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	_, c := start(t, m, procman.Spec{Env: []string{"PROCMAN_TEST_EXTRA=yes"}, Invocation: work("getenv", "PROCMAN_TEST_EXTRA", true)})
	waitExit(t, m, c)
	require.Equal(t, [][]byte{[]byte(`true "yes" yes`)}, c.answers())
}

// runByHand runs the test binary as a child outside any Manager.
func runByHand(t *testing.T, cookieValue string, extra []*os.File) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cookie+"="+cookieValue)
	cmd.ExtraFiles = extra
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running %s: %v", os.Args[0], err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func TestChildStartedByHandExitsWithOneLine(t *testing.T) {
	leakcheck.Check(t)
	devnull := func() *os.File {
		f, err := os.Open(os.DevNull)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		return f
	}
	// pipes returns fds 3, 4 and 5 for a child: an invocation pipe
	// holding data (closed at our end), a message pipe, and a control
	// pipe, which stays open: its end would tell the child that its
	// parent is gone.
	pipes := func(data []byte) []*os.File {
		ir, iw, err := os.Pipe()
		require.NoError(t, err)
		mr, mw, err := os.Pipe()
		require.NoError(t, err)
		cr, cw, err := os.Pipe()
		require.NoError(t, err)
		_, err = iw.Write(data)
		require.NoError(t, err)
		iw.Close()
		t.Cleanup(func() { ir.Close(); mr.Close(); mw.Close(); cr.Close(); cw.Close() })
		return []*os.File{ir, mw, cr}
	}
	for _, tc := range []struct {
		name     string
		cookie   string
		extra    func() []*os.File
		wantCode int
		wantErr  string
	}{
		{"NoPipes", "procrastinate-go.v7", func() []*os.File { return nil }, 2, "not a pipe"},
		{"FilesThatAreNotPipes", "procrastinate-go.v7", func() []*os.File { return []*os.File{devnull(), devnull(), devnull()} }, 2, "not a pipe"},
		{"NoControlPipe", "procrastinate-go.v7", func() []*os.File { return pipes(nil)[:2] }, 2, "fd 5 is not a pipe"},
		{"WrongCookie", "procrastinate-go.v0", func() []*os.File { return nil }, 2, `"procrastinate-go.v0"`},
		{"GarbageInvocation", "procrastinate-go.v7", func() []*os.File { return pipes([]byte("garbage, not a frame")) }, 1, "unknown frame kind"},
		// The pipe ends inside a frame: its parent died as it wrote. A
		// child started by a Manager would kill its group; this one does
		// not lead its group (it shares ours), so it exits.
		{"TruncatedInvocation", "procrastinate-go.v7", func() []*os.File { return pipes(procman.AppendHeader(nil, procman.FrameInvocation, 100)) }, 3, "ended inside a frame; the parent is gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runByHand(t, tc.cookie, tc.extra())
			require.Equal(t, tc.wantCode, code, "exit code; stderr: %s", stderr)
			require.Empty(t, stdout)
			require.Equal(t, 1, strings.Count(stderr, "\n"), "want exactly one line on stderr, got %q", stderr)
			require.True(t, strings.HasSuffix(stderr, "\n"), "stderr %q", stderr)
			require.True(t, strings.HasPrefix(stderr, "procrastinate: "), "stderr %q", stderr)
			require.Contains(t, stderr, tc.wantErr)
		})
	}
}

func TestWorkerServesInvocationsUntilTheLast(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	const n = 5
	c := &child{}
	var sendErrs []error
	// On each answer but the last, the next invocation; the n-th is Last.
	c.onMessage = func(p *procman.Process, k procman.Kind, payload []byte) {
		got := len(c.answers())
		if got < n {
			if p.State() != procman.StateRunning {
				sendErrs = append(sendErrs, fmt.Errorf("the child stopped after %d answers, before its last invocation", got))
			}
			sendErrs = append(sendErrs, p.Send(work("echo", strconv.Itoa(got), got == n-1)))
		}
	}
	p, err := m.CreateProcess(procman.Spec{Invocation: work("echo", "first", false)}, c)
	require.NoError(t, err)
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	require.Equal(t, p.Pid(), e.Pid)
	want := [][]byte{[]byte("first")}
	for i := 1; i < n; i++ {
		want = append(want, []byte(strconv.Itoa(i)))
	}
	require.Equal(t, want, c.answers())
	for _, err := range sendErrs {
		require.NoError(t, err)
	}
	require.ErrorIs(t, p.Send(work("echo", "late", true)), procman.ErrInputClosed)
}

func TestCloseInputEndsAnIdleChildCleanly(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec procman.Spec
	}{
		{"AfterAnAnswer", procman.Spec{Invocation: work("echo", "one", false)}},
		{"NeverGivenWork", procman.Spec{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t)
			p, c := start(t, m, tc.spec)
			if tc.spec.Invocation != nil {
				waitHeard(t, m, c, wire.KindAnswer)
			}
			require.Equal(t, procman.StateRunning, p.State())
			p.CloseInput()
			p.CloseInput() // a second time does nothing
			// At once, before a Step has written the goodbye or closed
			// the pipe: nothing more goes to a child told goodbye.
			require.ErrorIs(t, p.Send(work("echo", "x", true)), procman.ErrInputClosed)
			e := waitExit(t, m, c)
			require.True(t, e.Success(), "an idle child whose input ends exits 0; got %v", e)
			require.ErrorIs(t, p.Send(work("echo", "x", true)), procman.ErrInputClosed)
		})
	}
}

// The invocation pipe is the child's lifeline: when it ends while the child
// works, the parent is gone (or gave up on it), and the child kills itself
// and its group.
func TestCloseInputWhileBusyMakesTheChildKillItself(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{Invocation: work("block", "", true)})
	waitHeard(t, m, c, wire.KindProgress)
	p.CloseInput()
	e := waitExit(t, m, c)
	require.Equal(t, syscall.SIGKILL, e.Signal, "%v", e)
	require.Equal(t, -1, e.ExitCode)
	require.NoError(t, e.Err, "the child killed itself; the manager did not")
}

// A child holds fds 0, 1, 2 and its three pipes, and on the portable
// backend its file socket (fd 6). The Go runtime (1.25 and
// later) opens the cgroup files it reads the CPU limit from, close-on-exec,
// and keeps them, and its poller, which waits on the pipes, holds an epoll
// fd and an eventfd; those are the only others allowed. Whatever the test
// process inherited from its own parent without close-on-exec (the shell
// or CI may leak fds) must not reach the child either.
func TestChildHoldsOnlyItsProtocolFDs(t *testing.T) {
	leakcheck.Check(t)
	// An fd this process holds without close-on-exec, as if leaked to it
	// by whoever started it.
	leaked, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0)
	require.NoError(t, err)
	defer syscall.Close(leaked)

	m := newManager(t)
	_, c := start(t, m, procman.Spec{Invocation: work("fds", "", true)})
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	require.Len(t, c.answers(), 1)
	got := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(c.answers()[0])), "\n") {
		f := strings.Fields(line)
		require.Len(t, f, 3, "line %q", line)
		fd, err := strconv.Atoi(f[0])
		require.NoError(t, err)
		switch {
		case fd == 0:
			require.Equal(t, os.DevNull, f[1], "fd 0")
		case fd == 1 || fd == 2:
		case fd >= 3 && fd <= 5:
			require.True(t, strings.HasPrefix(f[1], "pipe:"), "fd %d is %s; want a pipe", fd, f[1])
			require.Equal(t, "true", f[2], "fd %d is close-on-exec, so that what the task starts does not get it", fd)
		case fd == 6 && testio.PortableBackend:
			require.True(t, strings.HasPrefix(f[1], "socket:"), "fd 6 is %s; want the file socket", f[1])
			require.Equal(t, "true", f[2], "fd 6 is close-on-exec, so that what the task starts does not get it")
		default:
			runtimes := strings.HasPrefix(f[1], "/sys/fs/cgroup/") || // the CPU limit
				f[1] == "anon_inode:[eventpoll]" || f[1] == "anon_inode:[eventfd]" // the poller that waits on the pipes
			require.True(t, runtimes && f[2] == "true",
				"the child holds fd %d (%s, close-on-exec %s); want only fds 0-5 and the runtime's own", fd, f[1], f[2])
		}
		got[fd] = f[1]
	}
	want := 6
	if testio.PortableBackend {
		want = 7 // and the file socket
	}
	for fd := range want {
		require.Contains(t, got, fd)
	}
}

func TestChildLeadsItsOwnProcessGroup(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{Invocation: work("pgid", "", true)})
	waitExit(t, m, c)
	require.Equal(t, [][]byte{fmt.Appendf(nil, "%d %d", p.Pid(), p.Pid())}, c.answers(), "pid and process group")
}
