package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two rounds in which the machine's speed doubled: the ratio within each
// round is 0.5, while the ratio of the two medians would be 0.75/1.5.
const twoRounds = `goos: linux
# round 1
BenchmarkA-2	100	1000 ns/op	100 tasks/s
BenchmarkB	100	1000 ns/op	200 tasks/s	7.5 cpu-µs/task
# round 2
BenchmarkB	100	1000 ns/op	400 tasks/s	8.5 cpu-µs/task
BenchmarkA-2	100	1000 ns/op	200 tasks/s
some line that is not a result
`

func TestRatiosAreTakenWithinARound(t *testing.T) {
	r, err := parse(strings.NewReader(twoRounds))
	require.NoError(t, err)
	assert.Equal(t, []string{"A", "B"}, r.names, "names, without the GOMAXPROCS suffix, in order")
	assert.Equal(t, []string{"ns/op", "tasks/s", "cpu-µs/task"}, r.units)
	assert.Equal(t, []float64{100, 200}, r.figures("A", "tasks/s"))
	assert.Equal(t, []float64{0.5, 0.5}, r.ratios("A", "B", "tasks/s"))
	assert.Equal(t, 150.0, median(r.figures("A", "tasks/s")), "the median of an even count is the mean of the middle two")
	assert.Empty(t, r.ratios("A", "B", "cpu-µs/task"), "A has no cpu-µs/task: no ratio")

	var out strings.Builder
	require.NoError(t, r.table(&out, spec{metrics: []string{"tasks/s", "cpu-µs/task"}, ratios: []string{"tasks/s"}, refs: []string{"B"}}))
	want := "Medians over 2 rounds. A ratio is taken within each round; the table gives its median (lowest–highest).\n\n" +
		"| benchmark | tasks/s | cpu-µs/task | tasks/s ÷ B |\n" +
		"| --- | ---: | ---: | ---: |\n" +
		"| A | 150 |  | 0.50 (0.50–0.50) |\n" +
		"| B | 300 | 8.00 | 1.00 |\n"
	assert.Equal(t, want, out.String())
}

// Without round marks, the k-th run of a name is paired with the k-th run
// of its reference (go test -count=N).
func TestRunsOfOneRoundArePairedInOrder(t *testing.T) {
	r, err := parse(strings.NewReader("BenchmarkA 1 10 x\nBenchmarkA 1 30 x\nBenchmarkB 1 20 x\nBenchmarkB 1 10 x\n"))
	require.NoError(t, err)
	assert.Equal(t, []float64{0.5, 3}, r.ratios("A", "B", "x"))
}

func TestReferenceReplacesTheMatchingPartOfTheName(t *testing.T) {
	for _, c := range []struct{ name, ref, want string }{
		{"TaskSize/work=1ms/mode=fresh", "mode=goroutine", "TaskSize/work=1ms/mode=goroutine"},
		{"TaskSize/work=1ms/mode=fresh", "GoReexec", "GoReexec"},
		{"GoReexec", "mode=goroutine", ""},
		{"LatencySpare/idle=1ms", "GoPipeTrip/child=fresh/idle=1ms", "GoPipeTrip/child=fresh/idle=1ms"},
	} {
		assert.Equal(t, c.want, reference(c.name, c.ref), "reference(%q, %q)", c.name, c.ref)
	}
}

func TestNumberGroupsThousandsAndRoundsTheRest(t *testing.T) {
	for v, want := range map[float64]string{
		505367.4: "505,367", 1234: "1,234", 100: "100", 69.44: "69.4", 0.856: "0.86", -2500: "-2,500",
	} {
		assert.Equal(t, want, number(v), "number(%v)", v)
	}
}

func TestParseRejectsABadFigure(t *testing.T) {
	_, err := parse(strings.NewReader("BenchmarkA 1 ten ns/op\n"))
	require.ErrorContains(t, err, `"ten" is not a number`)
}

func TestTableOfNothingFails(t *testing.T) {
	r, err := parse(strings.NewReader("nothing here\n"))
	require.NoError(t, err)
	require.ErrorContains(t, r.table(&strings.Builder{}, spec{metrics: []string{"x"}}), "no benchmark results")
}

// With a pivot, one row per size and a column per mode; the reference's
// own ratio column is left out.
func TestPivotMakesAColumnPerMode(t *testing.T) {
	const raw = `# round 1
BenchmarkTaskSize/work=1ms/mode=goroutine 10 500 wall-µs/task 1000 cpu-µs/task
BenchmarkTaskSize/work=1ms/mode=fresh 10 1500 wall-µs/task 3000 cpu-µs/task
BenchmarkTaskSize/work=30ms/mode=goroutine 10 15000 wall-µs/task 30000 cpu-µs/task
BenchmarkTaskSize/work=30ms/mode=fresh 10 16500 wall-µs/task 32000 cpu-µs/task
`
	r, err := parse(strings.NewReader(raw))
	require.NoError(t, err)
	var out strings.Builder
	require.NoError(t, r.table(&out, spec{
		metrics: []string{"cpu-µs/task"}, ratios: []string{"wall-µs/task"}, refs: []string{"mode=goroutine"}, pivot: "mode",
	}))
	want := "| benchmark | goroutine cpu-µs/task | fresh cpu-µs/task | wall-µs/task: fresh ÷ goroutine |\n" +
		"| --- | ---: | ---: | ---: |\n" +
		"| TaskSize/work=1ms | 1,000 | 3,000 | 3.00 (3.00–3.00) |\n" +
		"| TaskSize/work=30ms | 30,000 | 32,000 | 1.10 (1.10–1.10) |\n"
	assert.Contains(t, out.String(), want)
}
