package task

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusKBReadsOneFieldInKB(t *testing.T) {
	status := []byte("Name:\tx\nVmPeak:\t  10000 kB\nVmHWM:\t    2372 kB\nVmRSS:\t 2000 kB\n")
	n, ok := statusKB(status, "VmHWM:")
	require.True(t, ok)
	assert.Equal(t, int64(2372), n)
	for _, bad := range []string{"", "VmHWM:\n", "VmHWM:\t12 MB\n", "VmHWM:\tlots kB\n", "VmRSS:\t1 kB\n"} {
		_, ok := statusKB([]byte(bad), "VmHWM:")
		assert.False(t, ok, "%q", bad)
	}
}

// The peak is never below what the process holds now.
func TestPeakRSSCoversTheCurrentRSS(t *testing.T) {
	b := make([]byte, 32<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	status, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	now, ok := statusKB(status, "VmRSS:")
	require.True(t, ok)
	assert.GreaterOrEqual(t, peakRSS(), now*1024)
	assert.GreaterOrEqual(t, now*1024, int64(32<<20), "the 32 MiB just touched")
	_ = b[len(b)-1]
}
