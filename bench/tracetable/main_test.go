package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
}

// Marks from two processes merge in time order; a trip runs from a
// Scheduled to the ValueReturned after it, and keeps the first time each
// point was passed (a reused manager passes ManagerAwake often).
func TestReadAndSplit(t *testing.T) {
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
	assert.Equal(t, map[tracepoint.Point]int64{
		tracepoint.Scheduled: 1000, tracepoint.ManagerAwake: 1010, tracepoint.ChildRead: 1100,
		tracepoint.AnswerWrite: 1150, tracepoint.AnswerRead: 1200, tracepoint.ValueReturned: 1300,
	}, trips[0])
	assert.Equal(t, int64(400), trips[1][tracepoint.ValueReturned]-trips[1][tracepoint.Scheduled])
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
}

func TestMicro(t *testing.T) {
	assert.Equal(t, 0.0, micro(nil, 50))
	ds := []time.Duration{3 * time.Microsecond, time.Microsecond, 2 * time.Microsecond}
	assert.Equal(t, 2.0, micro(ds, 50))
	assert.Equal(t, 2.0, micro(ds, 90), "the 90th percentile of three is the second")
}
