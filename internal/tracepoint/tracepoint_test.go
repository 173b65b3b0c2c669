package tracepoint_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

func TestPointsRoundTripByName(t *testing.T) {
	ps := tracepoint.Points()
	require.Len(t, ps, 12)
	assert.Equal(t, tracepoint.Scheduled, ps[0])
	assert.Equal(t, tracepoint.ValueReturned, ps[len(ps)-1])
	for i, p := range ps {
		if i > 0 {
			assert.Greater(t, p, ps[i-1], "in path order")
		}
		got, ok := tracepoint.Parse(p.String())
		require.True(t, ok, "%v", p)
		assert.Equal(t, p, got)
	}
	_, ok := tracepoint.Parse("Nowhere")
	assert.False(t, ok)
	assert.Equal(t, "Point(?)", tracepoint.Point(0).String())
	assert.Equal(t, "Point(?)", tracepoint.Point(200).String())
}

// Without the procrastinate_trace tag, marks cost nothing and write
// nothing, even with $PROCRASTINATE_TRACE set.
func TestUntaggedBuildRecordsNothing(t *testing.T) {
	if tracepoint.Enabled {
		t.Skip("built with the procrastinate_trace tag")
	}
	dir := t.TempDir()
	t.Setenv("PROCRASTINATE_TRACE", dir)
	tracepoint.Mark(tracepoint.Scheduled)
	tracepoint.Dump()
	assert.Zero(t, testing.AllocsPerRun(100, func() { tracepoint.Mark(tracepoint.TaskStarted) }))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
