package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// TestMain is also the children's entry: a child is this test binary
// started again, and procrastinate.Main runs its task and exits.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// Every size runs in every way, in the order asked, with n between -min
// and -max, and each line has both figures.
func TestMeasureRunsEverySizeInEveryWay(t *testing.T) {
	leakcheck.Check(t)
	var out strings.Builder
	c := config{
		perMs:   1000,
		sizes:   []time.Duration{100 * time.Microsecond, 2 * time.Millisecond},
		modes:   modes,
		budget:  time.Millisecond,
		min:     2,
		max:     5,
		reverse: true,
	}
	require.NoError(t, measure(&out, c))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 6, "lines of output: %q", out.String())
	want := []struct{ name, n string }{
		{"BenchmarkTaskSize/work=2ms/mode=reused", "2"},
		{"BenchmarkTaskSize/work=2ms/mode=fresh", "2"},
		{"BenchmarkTaskSize/work=2ms/mode=goroutine", "2"},
		{"BenchmarkTaskSize/work=100µs/mode=reused", "5"},
		{"BenchmarkTaskSize/work=100µs/mode=fresh", "5"},
		{"BenchmarkTaskSize/work=100µs/mode=goroutine", "5"},
	}
	for i, line := range lines {
		f := strings.Fields(line)
		require.Len(t, f, 6, "fields of %q", line)
		assert.Equal(t, want[i].name, f[0], "line %d", i)
		assert.Equal(t, want[i].n, f[1], "tasks of %q", f[0])
		assert.Equal(t, []string{"wall-µs/task", "cpu-µs/task"}, []string{f[3], f[5]}, "units of %q", f[0])
		assert.NotEqual(t, "0.0", f[2], "the wall time of %q", f[0])
	}
}

// A fresh process costs CPU that a goroutine does not: with tiny tasks,
// the fresh way's CPU per task is far above the goroutines'.
func TestFreshProcessesCostCPU(t *testing.T) {
	leakcheck.Check(t)
	g, err := runTasks("goroutine", 4, 10)
	require.NoError(t, err)
	f, err := runTasks("fresh", 4, 10)
	require.NoError(t, err)
	assert.Positive(t, f.Children, "the children's CPU time")
	assert.Greater(t, f.Self+f.Children, 10*(g.Self+g.Children), "CPU of 4 fresh tasks against 4 in goroutines")
}

func TestCalibratedRoundsTakeAboutAMillisecond(t *testing.T) {
	perMs := calibrate()
	require.Positive(t, perMs)
	// Half a millisecond's worth takes some CPU, and not 100 times more.
	d := cpuOf(perMs / 2)
	assert.Greater(t, d, 50*time.Microsecond, "CPU time of half a calibrated millisecond")
	assert.Less(t, d, 50*time.Millisecond, "CPU time of half a calibrated millisecond")
}

func TestParseSizesAndModesRefuseBadValues(t *testing.T) {
	sizes, err := parseSizes("100µs, 1ms,30ms")
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{100 * time.Microsecond, time.Millisecond, 30 * time.Millisecond}, sizes)
	_, err = parseSizes("1ms,-2ms")
	require.ErrorContains(t, err, `"-2ms" is not a positive duration`)
	_, err = parseModes("fresh,forked")
	require.ErrorContains(t, err, `"forked" is not one of goroutine, fresh, reused`)
}
