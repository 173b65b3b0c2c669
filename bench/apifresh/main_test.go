package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// TestMain is also the children's entry.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// run counts the children's CPU: every child is reaped by the time it
// returns.
func TestRunCountsTheChildren(t *testing.T) {
	leakcheck.Check(t)
	use, err := run(3)
	require.NoError(t, err)
	assert.Positive(t, use.Wall, "wall time")
	assert.Positive(t, use.Children, "the children's CPU time")
	f := strings.Fields(use.Line("APIFresh", 3))
	require.Len(t, f, 10, "fields of the line")
	assert.Equal(t, []string{"BenchmarkAPIFresh", "3", "ns/op", "tasks/s", "parent-cpu-µs/task", "child-cpu-µs/task"},
		[]string{f[0], f[1], f[3], f[5], f[7], f[9]})
}
