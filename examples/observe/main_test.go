package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// TestMain calls procrastinate.Main first, as main does. With
// OBSERVE_MAIN set, it runs main instead of the tests, with the
// arguments after "--".
func TestMain(m *testing.M) {
	procrastinate.Main()
	if os.Getenv("OBSERVE_MAIN") != "" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{os.Args[0]}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

// TestRun runs a batch of 20 and reads /metrics while it is served: 20
// calls, two crashing ones that died twice (a retry each), two that
// failed.
func TestRun(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var body string
	var out strings.Builder
	err = run(&out, ln, 20, func(d *dispatcher.Dispatcher) {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		body = string(b)
		http.DefaultClient.CloseIdleConnections()
	})
	require.NoError(t, err, "run; its output:\n%s", out.String())
	const name = "github.com/procrastinate-go/procrastinate/examples/observe.work"
	for _, line := range []string{
		`procrastinate_tasks_scheduled_total{task="` + name + `"} 20`,
		`procrastinate_tasks_completed_total{task="` + name + `",outcome="succeeded"} 16`,
		`procrastinate_tasks_completed_total{task="` + name + `",outcome="failed"} 2`,
		`procrastinate_tasks_completed_total{task="` + name + `",outcome="died"} 2`,
		`procrastinate_tasks_retries_total{task="` + name + `"} 2`,
	} {
		require.Contains(t, body, line+"\n", "/metrics; want the line %q", line)
	}
	require.Contains(t, out.String(), "20/20 done (100%), ", "the bar's last line")
	require.Contains(t, out.String(), ", 0 running, 4 failed, ", "the bar's last line")
	require.Contains(t, out.String(), "crashed running", "a crash reported from the events")
	require.Contains(t, out.String(), "16 succeeded, 2 failed, 2 died", "the summary at the end")
}

// TestMainEndsOnItsOwn runs the program as go run would, with a short
// batch, and waits for it to end by itself.
func TestMainEndsOnItsOwn(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", "--", "-n", "10", "-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "OBSERVE_MAIN=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "the program did not end within its time; its output:\n%s", out)
	require.NoError(t, err, "the program's exit; its output:\n%s", out)
	for _, want := range []string{"metrics at http://127.0.0.1:", "10/10 done (100%)", "8 succeeded, 1 failed, 1 died"} {
		require.Contains(t, string(out), want, "the program's output")
	}
}
