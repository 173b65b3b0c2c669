package procrastinate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/childenv"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// TestMain is also the child's entry: a child is a fresh start of this
// test binary, and procrastinate.Main runs the task it was started for and
// exits. In the test process it returns at once. GORACE is set first, so
// that children (which inherit it) do not sleep a second at exit under
// -race.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	runProgramIfAsked()
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// The tests' tasks, defined at package level so that the test process and
// every child register the same names.

// line is what appendLine writes, after waiting Delay.
type line struct {
	Path  string
	Text  string
	Delay time.Duration
}

var appendLine = task.Define("procrastinate_test.append-line", func(ctx context.Context, l line) (int, error) {
	select {
	case <-time.After(l.Delay):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	// One write of a short line to an O_APPEND file: lines of children
	// that write at once do not mix.
	_, err = f.WriteString(l.Text + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return os.Getpid(), err
}, task.WithJSON())

// whoAmI squares its argument and says where it ran.
type whoAmIReply struct {
	Square    int
	Pid, Ppid int
}

var whoAmI = task.Define("procrastinate_test.whoami", func(ctx context.Context, n int) (whoAmIReply, error) {
	return whoAmIReply{Square: n * n, Pid: os.Getpid(), Ppid: os.Getppid()}, nil
})

// nest schedules whoAmI on the default dispatcher of its own child, and
// returns what it answered with the child's pid.
type nestReply struct {
	Pid   int
	Inner whoAmIReply
}

var nest = task.Define("procrastinate_test.nest", func(ctx context.Context, n int) (nestReply, error) {
	d, err := procrastinate.Default()
	if err != nil {
		return nestReply{}, fmt.Errorf("starting the default dispatcher in the child: %w", err)
	}
	defer procrastinate.Reset()
	inner, err := whoAmI.Schedule(d, n).Value()
	if err != nil {
		return nestReply{}, fmt.Errorf("the inner task: %w", err)
	}
	return nestReply{Pid: os.Getpid(), Inner: inner}, nil
})

// resetDefault resets the default dispatcher now and when t ends, so that
// each test starts and ends without one.
func resetDefault(t *testing.T) {
	t.Helper()
	procrastinate.Reset()
	t.Cleanup(procrastinate.Reset)
}

// readLines returns the lines of the file at path, sorted.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	sort.Strings(lines)
	return lines
}

// TestImplicitSpec_JoinWaitsForTheDefaultDispatchersTasks ports the gem's spec/acceptance/implicit_spec.rb, the
// implicit use (no dispatcher started by hand): Join waits for all the
// tasks scheduled on the default dispatcher to complete.
func TestImplicitSpec_JoinWaitsForTheDefaultDispatchersTasks(t *testing.T) {
	leakcheck.Check(t)
	resetDefault(t)
	path := filepath.Join(t.TempDir(), "lines")

	var rs []*result.Result[int]
	var want []string
	for i := range 10 {
		text := fmt.Sprintf("task %d", i)
		want = append(want, text)
		// The delay leaves the tasks unfinished when the loop ends, so
		// that the test fails if Join does not wait.
		rs = append(rs, procrastinate.Schedule(appendLine, line{Path: path, Text: text, Delay: 50 * time.Millisecond}))
	}
	procrastinate.Join()

	ready := 0
	for _, r := range rs {
		if r.Ready() {
			ready++
		}
	}
	assert.Equal(t, 10, ready, "futures ready after Join")
	sort.Strings(want)
	assert.Equal(t, want, readLines(t, path), "lines written when Join returned")
	for i, r := range rs {
		pid, err := r.Value()
		require.NoError(t, err, "task %d", i)
		assert.NotEqual(t, os.Getpid(), pid, "task %d ran in the test process", i)
	}
}

func TestJoinAndResetWithoutADefaultDispatcherReturnAtOnce(t *testing.T) {
	resetDefault(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		procrastinate.Join()  // nothing was ever scheduled
		procrastinate.Reset() // nothing to shut down
		procrastinate.Reset()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Join or Reset waited with no default dispatcher")
	}
}

func TestResetStartsNewDispatcher(t *testing.T) {
	leakcheck.Check(t)
	resetDefault(t)

	d1, err := procrastinate.Default()
	require.NoError(t, err)
	again, err := procrastinate.Default()
	require.NoError(t, err)
	assert.Same(t, d1, again, "Default started a second dispatcher before Reset")

	v, err := procrastinate.Schedule(whoAmI, 3).Value()
	require.NoError(t, err)
	assert.Equal(t, 9, v.Square)

	procrastinate.Reset()
	select {
	case <-d1.Done():
	default:
		t.Fatal("Reset returned and the old default dispatcher still runs")
	}
	_, err = whoAmI.Schedule(d1, 1).Value()
	assert.ErrorIs(t, err, dispatcher.ErrClosed, "Schedule on the dispatcher that Reset shut down")

	v, err = procrastinate.Schedule(whoAmI, 4).Value()
	require.NoError(t, err, "Schedule after Reset")
	assert.Equal(t, 16, v.Square)
	d2, err := procrastinate.Default()
	require.NoError(t, err)
	assert.NotSame(t, d1, d2, "after Reset, Schedule must start a new dispatcher")

	// After Reset nothing of the dispatcher is left: no goroutine here,
	// and no child, zombie or fd (leakcheck.Check, when the test ends).
	procrastinate.Reset()
	goleak.VerifyNone(t)
}

func TestResetLetsWorkFinish(t *testing.T) {
	leakcheck.Check(t)
	resetDefault(t)
	path := filepath.Join(t.TempDir(), "lines")
	var rs []*result.Result[int]
	for i := range 3 {
		rs = append(rs, procrastinate.Schedule(appendLine, line{Path: path, Text: fmt.Sprint(i), Delay: 20 * time.Millisecond}))
	}
	procrastinate.Reset()
	for i, r := range rs {
		require.True(t, r.Ready(), "task %d unresolved after Reset", i)
		_, err := r.Value()
		assert.NoError(t, err, "task %d", i)
	}
	assert.Equal(t, []string{"0", "1", "2"}, readLines(t, path))
}

func TestMainReturnsInTheParent(t *testing.T) {
	assert.False(t, childenv.IsChild(), "the test process thinks it is a child")
	// Main was called in TestMain and returned; a second call returns too.
	procrastinate.Main()
}

// TestATaskMayScheduleOnADefaultDispatcherOfItsOwn: a task may use a default dispatcher of its own, in its
// child, and schedule work there (one level of nesting).
func TestATaskMayScheduleOnADefaultDispatcherOfItsOwn(t *testing.T) {
	leakcheck.Check(t)
	resetDefault(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := procrastinate.Schedule(nest, 6).Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 36, v.Inner.Square, "the inner task's value")
	assert.NotEqual(t, os.Getpid(), v.Pid, "the outer task ran in the test process")
	assert.NotEqual(t, v.Pid, v.Inner.Pid, "the inner task ran in the outer task's process")
	assert.Equal(t, v.Pid, v.Inner.Ppid, "the inner task's process is not the outer task's child")
}
