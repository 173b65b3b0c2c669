package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// envRunner makes this test binary the runner itself, for the tests that
// need it in a process of its own (to kill it).
const envRunner = "PROCRASTINATE_TEST_RUNNER"

// TestMain is also the child's entry (a child is a fresh start of this
// test binary), and the runner's when envRunner is set.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	if os.Getenv(envRunner) == "1" {
		os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// runIn runs the runner with args and stdin in this process, and returns
// its stdout, stderr and exit status. It checks that nothing is left
// behind.
func runIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	leakcheck.Check(t)
	var out, errs bytes.Buffer
	code := runMain(args, strings.NewReader(stdin), &out, &errs)
	return out.String(), errs.String(), code
}
