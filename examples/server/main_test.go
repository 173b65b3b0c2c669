package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
)

// TestMain calls procrastinate.Main first, as main does.
func TestMain(m *testing.M) {
	procrastinate.Main()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

// How long the test waits for what must happen.
const wait = 30 * time.Second

// build builds the example into dir and returns the binary's path.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "server")
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the example with: %v", err)
	}
	out, err := exec.Command(gocmd, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// example is a running example program.
type example struct {
	cmd    *exec.Cmd
	lines  chan string // its stdout, a line at a time; closed at EOF
	stderr bytes.Buffer
	seen   []string // the lines read so far
	unread []string // lines read but not yet returned by next or rest
	waited bool
}

// startExample starts the example; the test kills it if it is still
// running when the test ends.
func startExample(t *testing.T, bin string, args ...string) *example {
	t.Helper()
	e := &example{cmd: exec.Command(bin, args...), lines: make(chan string, 100)}
	e.cmd.Stderr = &e.stderr
	stdout, err := e.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, e.cmd.Start())
	go func() {
		defer close(e.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			e.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if !e.waited {
			_ = e.cmd.Process.Kill()
			_ = e.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("the example's stdout:\n%s\nits stderr:\n%s", strings.Join(e.seen, "\n"), e.stderr.String())
		}
	})
	return e
}

// wait waits for the example to exit, after its stdout ended.
func (e *example) wait() error {
	e.waited = true
	return e.cmd.Wait()
}

// next returns the next line of the example's stdout that contains s.
// Lines it passes over stay for later calls: the workers and the parent
// share stdout, so a worker's "started" may come before the parent's
// first line.
func (e *example) next(t *testing.T, s string) string {
	t.Helper()
	for i, line := range e.unread {
		if strings.Contains(line, s) {
			e.unread = append(e.unread[:i], e.unread[i+1:]...)
			return line
		}
	}
	timeout := time.After(wait)
	for {
		select {
		case line, ok := <-e.lines:
			if !ok {
				t.Fatalf("the example's stdout ended before a line with %q", s)
			}
			e.seen = append(e.seen, line)
			if strings.Contains(line, s) {
				return line
			}
			e.unread = append(e.unread, line)
		case <-timeout:
			t.Fatalf("no line with %q after %v", s, wait)
		}
	}
}

// rest returns the lines of stdout that next passed over, then the rest
// until it ends.
func (e *example) rest(t *testing.T) []string {
	t.Helper()
	out := e.unread
	e.unread = nil
	timeout := time.After(wait)
	for {
		select {
		case line, ok := <-e.lines:
			if !ok {
				return out
			}
			e.seen = append(e.seen, line)
			out = append(out, line)
		case <-timeout:
			t.Fatalf("the example's stdout did not end after %v", wait)
		}
	}
}

// pidIn returns the pid in a line "worker <pid>: ..." or "parent <pid>: ...".
func pidIn(t *testing.T, line string) int {
	t.Helper()
	f := strings.Fields(line)
	require.GreaterOrEqual(t, len(f), 2, "line %q", line)
	pid, err := strconv.Atoi(strings.TrimSuffix(f[1], ":"))
	require.NoError(t, err, "line %q", line)
	return pid
}

// TestExampleReplacesKilledWorkersAndStopsOnSignals builds the example and runs it as a user would, sending
// it signals.
func TestExampleReplacesKilledWorkersAndStopsOnSignals(t *testing.T) {
	bin := build(t, t.TempDir())
	t.Run("replaces a killed worker and stops on SIGTERM", func(t *testing.T) { testReplaceAndStop(t, bin) })
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT} {
		t.Run("stops on "+sig.String(), func(t *testing.T) { testStopsOn(t, bin, sig) })
	}
}

func testReplaceAndStop(t *testing.T, bin string) {
	leakcheck.Check(t)
	const n = 3
	e := startExample(t, bin, "-n", strconv.Itoa(n))
	parent := pidIn(t, e.next(t, "keeping 3 workers alive"))
	require.Equal(t, e.cmd.Process.Pid, parent)

	workers := map[int]bool{}
	for len(workers) < n {
		workers[pidIn(t, e.next(t, ": started"))] = true
	}
	var victim int
	for pid := range workers {
		victim = pid
		break
	}
	require.NoError(t, syscall.Kill(victim, syscall.SIGKILL))
	fresh := pidIn(t, e.next(t, ": started"))
	require.False(t, workers[fresh], "the replacement %d has the pid of a worker seen before", fresh)
	delete(workers, victim)
	workers[fresh] = true

	require.NoError(t, e.cmd.Process.Signal(syscall.SIGTERM))
	rest := e.rest(t)
	require.NoError(t, e.wait(), "the example's exit")
	require.Equal(t, 0, e.cmd.ProcessState.ExitCode())

	stopping := map[int]bool{}
	for _, line := range rest {
		if strings.HasSuffix(line, ": stopping") {
			stopping[pidIn(t, line)] = true
		}
	}
	require.Equal(t, workers, stopping, "every live worker returned through its context; stdout after SIGTERM: %q", rest)
	require.Contains(t, strings.Join(rest, "\n"), "all workers stopped")
	require.Contains(t, strings.Join(rest, "\n"), "terminated signal received")
	for pid := range workers {
		require.False(t, testio.Alive(pid), "worker %d outlived the example", pid)
	}
	require.False(t, testio.Alive(victim))
}

func testStopsOn(t *testing.T, bin string, sig syscall.Signal) {
	leakcheck.Check(t)
	e := startExample(t, bin, "-n", "2")
	e.next(t, "keeping 2 workers alive")
	w1, w2 := pidIn(t, e.next(t, ": started")), pidIn(t, e.next(t, ": started"))
	require.NoError(t, e.cmd.Process.Signal(sig))
	rest := e.rest(t)
	require.NoError(t, e.wait(), "the example's exit on %v", sig)
	require.Contains(t, strings.Join(rest, "\n"), "all workers stopped")
	require.False(t, testio.Alive(w1))
	require.False(t, testio.Alive(w2))
}
