package dispatcher_test

import (
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/frametest"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// A task that writes an answer frame of its own to the message pipe, and
// then returns, must not shift the answers of the calls that its child
// runs after it: each of them gets its own value, never the value of
// another call. Reused children (one call after another) and pipelined
// ones (calls queued in the child's pipe) alike. A forged answer that
// names the forger's own call is its answer (the first wins, the second
// is dropped); one that names another call, or none, kills the child, and
// the calls queued behind the forger run again in a new one.
func TestForgedAnswerDoesNotShiftLaterAnswers(t *testing.T) {
	seven, err := task.JSON.Marshal(7)
	require.NoError(t, err)
	for _, s := range []struct {
		name     string
		s        strategy.Strategy
		waitNext bool // the forger waits for the next call to reach its child
	}{
		{"Reuse", strategy.Throttled(1, strategy.Reuse(strategy.Unlimited)), true},
		// The next calls are in the child's pipe before it starts the
		// forger: they are handed out with it, and a child takes a few
		// milliseconds to start.
		{"Pipeline", strategy.Throttled(1, strategy.Reuse(strategy.Unlimited), strategy.Pipeline(4)), false},
	} {
		for _, f := range []struct {
			name  string
			frame []byte
			want  int    // the forger's value; 0: it fails
			err   string // what its error says, when it fails
		}{
			// A frame as the child's loop wrote it before answers were
			// numbered: its first byte, 0, is no number.
			{"Unnumbered", frametest.Frame(nil, frametest.Reply, seven), 0, "valid invocation number"},
			// The forger is its child's first call, number 1.
			{"ForItsOwnCall", frametest.Numbered(nil, frametest.Reply, 1, wire.KindAnswer, seven), 7, ""},
			{"ForTheNextCall", frametest.Numbered(nil, frametest.Reply, 2, wire.KindAnswer, seven), 0, "reply frame for invocation 2"},
		} {
			t.Run(s.name+"/"+f.name, func(t *testing.T) {
				checkLeaks(t)
				var log syncBuffer
				d := start(t, s.s, dispatcher.WithStderr(nil),
					dispatcher.WithLogger(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})))
				a := forgeAnswer.Schedule(d, forgeArg{Frame: f.frame, WaitNext: s.waitNext, Value: 42})
				b := square.Schedule(d, 2)
				c := square.Schedule(d, 3)
				v, err := await(t, a)
				if f.want != 0 {
					require.NoError(t, err, "the forger's Value()")
					require.Equal(t, f.want, v, "the forger's Value(); want the answer it forged for its own call, the first")
				} else {
					var cd *result.ChildDeath
					require.ErrorAs(t, err, &cd, "the forger's Value() = %v, %v; want its child's death", v, err)
					var pe *procman.ProtocolError
					require.ErrorAs(t, err, &pe, "the forger's child died of a protocol error")
					require.ErrorContains(t, err, f.err)
					// Killed, or ended on its own when its next write met
					// the pipe its parent closed, whichever came first.
					require.True(t, cd.Signal == syscall.SIGKILL || cd.ExitCode != 0, "the child that broke the protocol is ended: %v", cd)
				}
				checkOwnValues(t, b, c)
				if f.want != 0 {
					require.Contains(t, log.String(), "a frame for an invocation it had answered; dropped", "the forger's own answer, the second, is dropped and logged")
				}
				shutdown(t, d, nil)
			})
		}
	}
}

// checkOwnValues checks that b and c, square(2) and square(3) scheduled
// after a forger, got their own values.
func checkOwnValues(t *testing.T, b, c *result.Result[int]) {
	t.Helper()
	v, err := await(t, b)
	require.NoError(t, err, "Value() of the call after the forger")
	require.Equal(t, 4, v, "Value() of square(2), run after the forger; want 4, its own")
	v, err = await(t, c)
	require.NoError(t, err, "Value() of the second call after the forger")
	require.Equal(t, 9, v, "Value() of square(3), run after the forger; want 9, its own")
}
