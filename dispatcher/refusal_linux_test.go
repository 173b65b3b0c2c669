package dispatcher_test

// A system that refuses new processes or fds for a while: a pids cgroup
// that its children fill, and an fd limit that starts cannot get past.
// Each case runs a helper process (this test binary, re-executed in the
// role that refusalModeEnv names), since the refusal is the whole
// process's: the test's own process must not run out.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// refusalModeEnv makes this test binary a helper of the refusal tests (see
// the init function below) instead of a test run. Its value is the mode:
// "pids" (many tasks at once; the test puts the helper in a small pids
// cgroup), "nofile" (an fd limit that refuses starts for a while, then
// lifts) or "nofile-forever" (one that never lifts).
const refusalModeEnv = "PROCRASTINATE_TEST_REFUSAL"

// refusalTasks is how many tasks a helper schedules.
const refusalTasks = 100

// napSquare returns n*n after a nap: the work of a task that keeps its
// child alive for a moment, so that the children of a burst overlap.
var napSquare = task.Define("dispatcher_test.refusal.nap-square", func(ctx context.Context, n int) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return n * n, nil
})

// init runs a helper's role when the test re-executes this binary with
// refusalModeEnv set. It runs after the package's variables are
// initialised, so the tasks are defined, and before TestMain. The
// variable is taken out of the environment first: the helper's own
// children must go on to procrastinate.Main and serve their tasks.
//
// The helper waits for a line on its stdin (the test moves it into a
// cgroup first), schedules refusalTasks tasks on a Simple dispatcher, and
// writes one line for each future: "ok <i> <value>" or "err <i> <error>".
func init() {
	mode, ok := os.LookupEnv(refusalModeEnv)
	if !ok {
		return
	}
	os.Unsetenv(refusalModeEnv)
	if err := refusalHelper(mode); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func refusalHelper(mode string) error {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the go: %w", err)
	}
	var opts []dispatcher.Option
	opts = append(opts, dispatcher.WithStderr(nil)) // a child's crash is in its ChildDeath
	// What the dispatcher did, for the test's failure message.
	opts = append(opts, dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})))
	// A minute, not the default 10 s: on a loaded machine the children
	// that fill the cgroup can take longer than that to end and free
	// their pids, and the test is about every task getting its value.
	opts = append(opts, dispatcher.WithStartRetry(time.Minute))
	var s strategy.Strategy = strategy.Simple()
	var refused chan struct{}
	if strings.HasPrefix(mode, "nofile") {
		// The limit comes down once the dispatcher is set up, and goes
		// back up 300 ms after the first start it refused (never, in
		// nofile-forever).
		w := &refusalWatch{inner: s, refused: make(chan struct{})}
		s, refused = w, w.refused
		if mode == "nofile-forever" {
			opts = append(opts, dispatcher.WithStartRetry(300*time.Millisecond))
		}
	}
	d, err := dispatcher.Start(s, opts...)
	if err != nil {
		return err
	}
	var lifted sync.WaitGroup
	if refused != nil {
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			return err
		}
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return err
		}
		// Room for a few children (five fds each), not for the burst; when
		// the limit stays, room for none: a child's pipes and pidfd need
		// more fds than the few that are free.
		room := 12
		if mode == "nofile-forever" {
			room = 0
		}
		low := unix.Rlimit{Cur: uint64(len(fds) + room), Max: old.Max}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
			return err
		}
		if mode == "nofile" {
			lifted.Add(1)
			go func() {
				defer lifted.Done()
				<-refused
				time.Sleep(300 * time.Millisecond) // how long the refusal lasts
				if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
					fmt.Fprintln(os.Stderr, "helper: lifting the fd limit:", err)
				}
			}()
		}
	}
	rs := make([]*result.Result[int], refusalTasks)
	for i := range rs {
		rs[i] = napSquare.Schedule(d, i)
	}
	out := bufio.NewWriter(os.Stdout)
	for i, r := range rs {
		v, err := r.Value()
		if err != nil {
			fmt.Fprintf(out, "err %d %s\n", i, strings.ReplaceAll(err.Error(), "\n", " | "))
		} else {
			fmt.Fprintf(out, "ok %d %d\n", i, v)
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if refused != nil {
		select {
		case <-refused:
		default:
			return fmt.Errorf("no start was refused: the fd limit did not bite")
		}
	}
	lifted.Wait()
	return d.Shutdown(context.Background())
}

// refusalWatch is a strategy that closes refused at the first Spawn that
// fails.
type refusalWatch struct {
	inner   strategy.Strategy
	refused chan struct{}
	once    sync.Once
}

func (w *refusalWatch) Step(p strategy.Pool)    { w.inner.Step(refusalPool{p, w}) }
func (w *refusalWatch) Policy() strategy.Policy { return w.inner.Policy() }

type refusalPool struct {
	strategy.Pool
	w *refusalWatch
}

func (p refusalPool) Spawn() error {
	err := p.Pool.Spawn()
	if err != nil {
		p.w.once.Do(func() { close(p.w.refused) })
	}
	return err
}

// runRefusalHelper runs a helper in mode, calls setup with its pid before
// it lets it go, and returns its output lines once it has exited 0.
func runRefusalHelper(t *testing.T, mode string, setup func(pid int)) []string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), refusalModeEnv+"="+mode)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	setup(cmd.Process.Pid)
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	require.NoError(t, stdin.Close())
	err = cmd.Wait()
	waited = true
	_ = os.WriteFile("/tmp/h4scratch/helper-stderr.txt", []byte(stderr.String()), 0o644)
	require.NoError(t, err, "the helper did not exit cleanly; the end of its stderr:\n%s", tail(stderr.String(), 3000))
	return strings.Split(strings.TrimSpace(stdout.String()), "\n")
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// requireAllSquares checks that the helper's every future resolved to its
// value.
func requireAllSquares(t *testing.T, lines []string) {
	t.Helper()
	var failed []string
	ok := 0
	for _, l := range lines {
		var i, v int
		if _, err := fmt.Sscanf(l, "ok %d %d", &i, &v); err == nil && v == i*i {
			ok++
			continue
		}
		failed = append(failed, l)
	}
	if len(failed) > 5 {
		failed = append(failed[:5], "...")
	}
	require.Equal(t, refusalTasks, ok, "futures that resolved to their value; the others:\n%s", strings.Join(failed, "\n"))
}

// requireSquaresOrDeathsAfterReading checks the helper's futures where
// the system refuses threads to children: a child is tried again only
// when it died before it read its task with the runtime's own message
// for a refused thread. A child that read its task ran, so it is not
// tried again unasked (see docs/failure.md), and under -race a child
// refused a thread sometimes dies of a crash report that names no cause
// ("unknown pc"); either is a ChildDeath. Every other future has its
// value, and the deaths stay few.
func requireSquaresOrDeathsAfterReading(t *testing.T, lines []string) {
	t.Helper()
	var deaths, other []string
	ok := 0
	for _, l := range lines {
		var i, v int
		if _, err := fmt.Sscanf(l, "ok %d %d", &i, &v); err == nil && v == i*i {
			ok++
			continue
		}
		if strings.HasPrefix(l, "err ") && strings.Contains(l, "died before answering") {
			deaths = append(deaths, l)
			continue
		}
		other = append(other, l)
	}
	require.Empty(t, other, "futures that resolved to neither their value nor a ChildDeath")
	require.Equal(t, refusalTasks, ok+len(deaths), "futures that resolved")
	require.LessOrEqual(t, len(deaths), refusalTasks/20, "children that died and were not tried again:\n%s", strings.Join(deaths, "\n"))
	if len(deaths) > 0 {
		t.Logf("%d children died and were not tried again: %s", len(deaths), deaths[0])
	}
}

// A parent in a pids cgroup that its children fill: the system refuses
// its forks, and its children's threads. The parent's Go runtime must
// not crash for want of a thread, and every task gets its value: a start
// that the system refused is tried again, and so is a child that died
// for want of a thread before it read its task (a few children that die
// otherwise are ChildDeaths: see requireSquaresOrDeathsAfterReading).
func TestNoProcessesLeftCrashesNothing(t *testing.T) {
	checkLeaks(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pids cgroup")
	}
	const root = "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skipf("no pids cgroup (v1) at %s: %v", root, err)
	}
	cg := filepath.Join(root, "procrastinate-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot make a pids cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroup(t, cg) })
	require.NoError(t, os.WriteFile(filepath.Join(cg, "pids.max"), []byte("40"), 0o644))
	lines := runRefusalHelper(t, "pids", func(pid int) {
		require.NoError(t, os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644))
	})
	requireSquaresOrDeathsAfterReading(t, lines)
	events, err := os.ReadFile(filepath.Join(cg, "pids.events"))
	require.NoError(t, err)
	t.Logf("pids.events: %s", bytes.TrimSpace(events))
	require.NotEqual(t, "max 0", string(bytes.TrimSpace(events)), "the cgroup never refused a process: the test tested nothing")
}

// An fd limit refuses starts (EMFILE) for 300 ms: every task still gets
// its value, the refused starts being tried again.
func TestStartsRefusedForAWhileAreRetried(t *testing.T) {
	checkLeaks(t)
	requireAllSquares(t, runRefusalHelper(t, "nofile", func(int) {}))
}

// An fd limit that leaves no room for a child and never lifts: every task
// fails with the reason once the start retry (300 ms in the helper) is
// over, and those behind the first fail at once; none waits for ever.
func TestStartsRefusedForGoodFailTheirTasks(t *testing.T) {
	checkLeaks(t)
	lines := runRefusalHelper(t, "nofile-forever", func(int) {})
	require.Len(t, lines, refusalTasks)
	for _, l := range lines {
		require.True(t, strings.HasPrefix(l, "err "), "a task ran under an fd limit that leaves no room: %s", l)
		require.Contains(t, l, "the system has refused children for", "a task failed for another reason")
		require.Contains(t, l, "too many open files", "a task failed for another reason")
	}
}

// A start that fails for good (a working directory or an executable that
// does not exist) fails its task at once, however long refused starts
// are tried again.
func TestStartsThatCannotWorkFailAtOnce(t *testing.T) {
	checkLeaks(t)
	t.Run("a missing working directory", func(t *testing.T) {
		d := start(t, strategy.Throttled(2), dispatcher.WithStartRetry(time.Hour))
		_, err := await(t, square.Schedule(d, 2, task.WithProcess(task.Process{Dir: filepath.Join(t.TempDir(), "missing")})))
		require.ErrorIs(t, err, syscall.ENOENT)
		v, err := await(t, square.Schedule(d, 3))
		require.NoError(t, err)
		require.Equal(t, 9, v)
		shutdown(t, d, nil)
	})
	t.Run("a missing executable", func(t *testing.T) {
		d := start(t, strategy.Throttled(2), dispatcher.WithStartRetry(time.Hour),
			procmanOptions(procman.WithExecutable(filepath.Join(t.TempDir(), "missing"))))
		for i := range 3 {
			_, err := await(t, square.Schedule(d, i))
			require.ErrorIs(t, err, syscall.ENOENT, "call %d", i)
		}
		require.NoError(t, d.Close())
	})
}

// removeCgroup removes the cgroup cg, killing what is left in it first: a
// helper that crashed leaves its children to die by their lifeline, which
// takes a moment.
func removeCgroup(t *testing.T, cg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
		if err != nil {
			t.Errorf("reading the cgroup's processes: %v", err)
			return
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		err = os.Remove(cg)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("removing the cgroup %s: %v (processes in it: %s)", cg, err, bytes.TrimSpace(b))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
