package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}

// The example runs end to end: its slow call's worker is killed, and the
// call finishes on the other worker.
func TestExample(t *testing.T) {
	leakcheck.Check(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: cannot build the example")
	}
	bin := filepath.Join(t.TempDir(), "cluster")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	run := exec.Command(bin)
	run.Env = append(os.Environ(), "PROCRASTINATE_NATS_URL=")
	out, err = run.CombinedOutput()
	require.NoError(t, err, "the example: %s", out)
	m := regexp.MustCompile(`runs on worker pid (\d+); killing it`).FindSubmatch(out)
	require.NotNil(t, m, "the example's output names the killed worker: %s", out)
	require.Regexp(t, `finished on worker pid \d+, the other one`, string(out))
	require.NotContains(t, string(out), "finished on worker pid "+string(m[1])+",", "the call finished on the worker that was killed")
}
