//go:build linux

package command_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// TestMain is also the child's entry: a child is a fresh start of this
// test binary.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// start starts a dispatcher for one test, checks that nothing is left
// behind, and shuts it down at the end.
func start(t *testing.T, s strategy.Strategy) *dispatcher.Dispatcher {
	t.Helper()
	leakcheck.Check(t)
	d, err := dispatcher.Start(s, dispatcher.WithGracePeriod(2*time.Second))
	require.NoError(t, err, "dispatcher.Start")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx), "Shutdown")
	})
	return d
}
