package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
}

// Marks from two processes merge in time order; a trip runs from a
// Scheduled to the ValueReturned after it, and keeps the first time each
// point was passed (a reused manager passes ManagerAwake often).
func TestMarksMergeInTimeOrderAndSplitIntoTrips(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "100.trace", "1000 Scheduled 0\n1010 ManagerAwake 0\n1030 ManagerAwake 1\n1200 AnswerRead 0\n1300 ValueReturned 0\n"+
		"5000 Scheduled 1\n5400 ValueReturned 1\n9000 ManagerAwake 0\n")
	write(t, dir, "200.trace", "1100 ChildRead 1\n1150 AnswerWrite 1\n")
	write(t, dir, "notes.txt", "not a trace file\n")
	marks, err := read(dir)
	require.NoError(t, err)
	require.Len(t, marks, 10)
	for i := 1; i < len(marks); i++ {
		assert.LessOrEqual(t, marks[i-1].ns, marks[i].ns)
	}
	trips := split(marks)
	require.Len(t, trips, 2)
	assert.Equal(t, trip{
		tracepoint.Scheduled: {1000, 0}, tracepoint.ManagerAwake: {1010, 0}, tracepoint.ChildRead: {1100, 1},
		tracepoint.AnswerWrite: {1150, 1}, tracepoint.AnswerRead: {1200, 0}, tracepoint.ValueReturned: {1300, 0},
	}, trips[0])
	assert.Equal(t, int64(400), trips[1][tracepoint.ValueReturned].ns-trips[1][tracepoint.Scheduled].ns)
}

// The crossings are split by whether their two ends ran on one CPU; a
// trip without both marks, or a mark without its CPU, counts in neither.
func TestByCPUSplitsCrossingsBySameOrOtherCPU(t *testing.T) {
	w, r := tracepoint.InvocationWrite, tracepoint.ChildRead
	trips := []trip{
		{w: {1000, 0}, r: {1010, 0}},
		{w: {2000, 0}, r: {2030, 1}},
		{w: {3000, 1}, r: {3050, 0}},
		{w: {4000, 1}},
		{w: {5000, -1}, r: {5010, 1}},
	}
	same, other := byCPU(trips, w, r)
	assert.Equal(t, []time.Duration{10}, same)
	assert.Equal(t, []time.Duration{30, 50}, other)
}

func TestReadRefusesWhatIsNotAMark(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "1.trace", "1000 Scheduled 0\nabc Scheduled 0\n")
	_, err := read(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `not a mark: "abc Scheduled 0"`)

	write(t, dir, "1.trace", "1000 Elsewhere 0\n")
	_, err = read(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a mark")

	write(t, dir, "1.trace", "1000 Scheduled zero\n")
	_, err = read(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `not a mark: "1000 Scheduled zero"`)
}

// A mark written without its CPU reads as one on an unknown CPU.
func TestReadWithoutACPU(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "1.trace", "1000 Scheduled\n")
	marks, err := read(dir)
	require.NoError(t, err)
	assert.Equal(t, []mark{{1000, tracepoint.Scheduled, -1}}, marks)
}

func TestMicroIsThePercentileInMicroseconds(t *testing.T) {
	assert.Equal(t, 0.0, micro(nil, 50))
	ds := []time.Duration{3 * time.Microsecond, time.Microsecond, 2 * time.Microsecond}
	assert.Equal(t, 2.0, micro(ds, 50))
	assert.Equal(t, 2.0, micro(ds, 90), "the 90th percentile of three is the second")
}
