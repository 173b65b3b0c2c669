package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// TestMain calls procrastinate.Main first, as main does.
func TestMain(m *testing.M) {
	procrastinate.Main()
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
	require.Contains(t, out.String(), "20/20 done: 16 succeeded, 2 failed, 2 died", "the last summary line")
	require.Contains(t, out.String(), "crashed running", "a crash reported from the events")
}
