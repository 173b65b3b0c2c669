package procman_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

type recorder struct {
	msgs  [][]byte
	exits []*procman.Exit
}

// Reply and Note implement procman.Handler: each records like Message.
func (r *recorder) Reply(p *procman.Process, k procman.Kind, payload []byte) {
	r.Message(p, k, payload)
}

func (r *recorder) Note(p *procman.Process, k procman.Kind, payload []byte) { r.Message(p, k, payload) }

func (r *recorder) Message(p *procman.Process, k procman.Kind, payload []byte) {
	r.msgs = append(r.msgs, payload)
}
func (r *recorder) Exited(p *procman.Process, e *procman.Exit) { r.exits = append(r.exits, e) }

func invocation(task string, arg []byte) []byte {
	return wire.AppendInvocation(nil, &wire.Invocation{Task: task, Arg: arg, Last: true})
}

func TestAChildAnswersAndExitsCleanly(t *testing.T) {
	leakcheck.Check(t)
	m := procman.New()
	require.NoError(t, m.Setup())
	defer m.Teardown()
	r := &recorder{}
	_, err := m.CreateProcess(procman.Spec{Invocation: invocation("echo", []byte("hello"))}, r)
	require.NoError(t, err)
	require.NoError(t, m.WaitForAllChildren())
	require.Len(t, r.exits, 1)
	require.True(t, r.exits[0].Success(), "exit: %v", r.exits[0])
	require.Equal(t, [][]byte{[]byte("hello")}, r.msgs)
	t.Logf("%v user=%v sys=%v rss=%d", r.exits[0], r.exits[0].UserTime, r.exits[0].SystemTime, r.exits[0].MaxRSS)
}
