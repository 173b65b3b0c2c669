package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/metrics"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

var (
	square = task.Define("metrics_test.square", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	})
	// quoted has a name with the characters a label value escapes.
	quoted = task.Define("metrics_test.quote\"back\\slash", func(ctx context.Context, n int) (int, error) {
		return 0, errors.New("no")
	})
)

// run runs two squares and one failing call on a dispatcher of its own,
// and returns its Stats once it has ended.
func run(t *testing.T) dispatcher.Stats {
	t.Helper()
	leakcheck.Check(t)
	d, err := dispatcher.Start(strategy.Throttled(1))
	require.NoError(t, err)
	for i := range 2 {
		_, err := square.Schedule(d, i).Value()
		require.NoError(t, err)
	}
	_, err = quoted.Schedule(d, 0).Value()
	require.Error(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx))
	return d.Stats()
}

// TestWrite checks samples of a real dispatcher's exposition, and that
// it is well formed (see checkExposition).
func TestWrite(t *testing.T) {
	s := run(t)
	var b strings.Builder
	require.NoError(t, metrics.Write(&b, s))
	out := b.String()
	for _, line := range []string{
		`procrastinate_tasks_scheduled_total{task="metrics_test.square"} 2`,
		`procrastinate_tasks_completed_total{task="metrics_test.square",outcome="succeeded"} 2`,
		`procrastinate_tasks_completed_total{task="metrics_test.square",outcome="failed"} 0`,
		`procrastinate_tasks_completed_total{task="metrics_test.quote\"back\\slash",outcome="failed"} 1`,
		`procrastinate_tasks_running{task="metrics_test.square"} 0`,
		`procrastinate_task_run_seconds_bucket{task="metrics_test.square",le="+Inf"} 2`,
		`procrastinate_task_run_seconds_count{task="metrics_test.square"} 2`,
		`procrastinate_task_queue_wait_seconds_bucket{task="metrics_test.square",le="3600"} 2`,
		`procrastinate_children 0`,
		`procrastinate_children_started_total ` + strconv.FormatInt(s.ChildrenStarted, 10),
		`# TYPE procrastinate_task_run_seconds histogram`,
	} {
		require.Contains(t, out, line+"\n", "the exposition; want the line %q in:\n%s", line, out)
	}
	checkExposition(t, out)
}

// checkExposition checks what the text format requires of out: every
// sample belongs to a family declared before it, with one TYPE, and a
// histogram's buckets grow up to +Inf, which equals its count.
func checkExposition(t *testing.T, out string) {
	t.Helper()
	types := map[string]string{}
	var lastBucket float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			require.NotContains(t, types, name, "a second TYPE line for %s", name)
			types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "a sample line without a value: %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "the value of %q", line)
		name, _, _ := strings.Cut(line[:i], "{")
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
				family = base
			}
		}
		require.Contains(t, types, family, "a sample of %s before its TYPE line", family)
		if strings.HasSuffix(name, "_bucket") {
			if strings.Contains(line, `le="0.001"`) {
				lastBucket = 0
			}
			require.GreaterOrEqual(t, v, lastBucket, "a bucket below the one before it: %q", line)
			lastBucket = v
		}
	}
	require.NoError(t, sc.Err())
}

// TestHandler serves the exposition over HTTP.
func TestHandler(t *testing.T) {
	leakcheck.Check(t)
	d, err := dispatcher.Start(strategy.Throttled(1))
	require.NoError(t, err)
	defer d.Close()
	_, err = square.Schedule(d, 3).Value()
	require.NoError(t, err)
	srv := httptest.NewServer(metrics.Handler(d))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, metrics.ContentType, resp.Header.Get("Content-Type"))
	var b strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&b)
	require.NoError(t, err)
	require.Contains(t, b.String(), `procrastinate_tasks_completed_total{task="metrics_test.square",outcome="succeeded"} 1`+"\n")
	checkExposition(t, b.String())
	srv.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
}

// TestCoreDoesNotLinkNetHTTP checks with go list that no package a
// program imports to run tasks brings net/http in; only this one does.
func TestCoreDoesNotLinkNetHTTP(t *testing.T) {
	leakcheck.Check(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not on PATH: %v", err)
	}
	deps := func(pkg string) []string {
		out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
		require.NoError(t, err, "go list -deps %s", pkg)
		return strings.Fields(string(out))
	}
	const mod = "github.com/procrastinate-go/procrastinate"
	for _, pkg := range []string{mod, mod + "/dispatcher", mod + "/task", mod + "/result", mod + "/strategy", mod + "/procman", mod + "/lock", mod + "/bar"} {
		require.NotContains(t, deps(pkg), "net/http", "the dependencies of %s", pkg)
	}
	require.Contains(t, deps(mod+"/metrics"), "net/http", "the dependencies of metrics, which serves HTTP")
}
