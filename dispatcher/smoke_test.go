package dispatcher_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

var square = task.Define("square", func(ctx context.Context, n int) (int, error) { return n * n, nil })
var die = task.Define("die", func(ctx context.Context, code int) (int, error) { os.Exit(code); return 0, nil })

func TestSmoke(t *testing.T) {
	d, err := dispatcher.Start(strategy.Throttled(2))
	require.NoError(t, err)
	var rs []*result.Result[int]
	for i := 0; i < 20; i++ {
		rs = append(rs, square.Schedule(d, i))
	}
	rd := die.Schedule(d, 3)
	for i, r := range rs {
		v, err := r.Value()
		require.NoError(t, err)
		require.Equal(t, i*i, v)
	}
	_, err = rd.Value()
	var cd *result.ChildDeath
	require.True(t, errors.As(err, &cd), "%v", err)
	require.Equal(t, 3, cd.ExitCode)
	require.NoError(t, d.Shutdown(context.Background()))
	_, err = square.Schedule(d, 1).Value()
	require.ErrorIs(t, err, dispatcher.ErrClosed)
}
