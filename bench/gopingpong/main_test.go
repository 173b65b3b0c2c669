package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// TestMain serves as the child when run starts the test binary again.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		child()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestRunTimesEveryTripInBothModes(t *testing.T) {
	for _, mode := range []string{"reused", "fresh"} {
		t.Run(mode, func(t *testing.T) {
			leakcheck.Check(t)
			times, err := run(mode, 3, 0, time.Millisecond)
			require.NoError(t, err)
			require.Len(t, times, 3)
			for _, d := range times {
				require.Positive(t, d)
			}
		})
	}
}
