package procman_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/procman"
)

func TestRlimitsAndNiceAreSetBeforeTheFirstInvocation(t *testing.T) {
	leakcheck.Check(t)
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(rlimitMsgqueue, &rl))
	require.Greater(t, rl.Max, uint64(1000), "this test lowers RLIMIT_MSGQUEUE, which needs room")
	m := newManager(t)
	_, c := start(t, m, procman.Spec{
		Rlimits:    []procman.Rlimit{{Resource: rlimitMsgqueue, Cur: 500, Max: 1000}},
		Nice:       5,
		Invocation: work("limits", "", true),
	})
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	require.Equal(t, [][]byte{[]byte("500 1000 5")}, c.answers(), "RLIMIT_MSGQUEUE soft, hard, and nice as the child sees them")
}

func TestLimitThatCannotBeSetIsAStartErrorAndLeavesNothing(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	c := &child{}
	p, err := m.CreateProcess(procman.Spec{
		Rlimits:    []procman.Rlimit{{Resource: 9999, Cur: 1, Max: 1}},
		StderrTail: 100,
		Invocation: work("echo", "x", true),
	}, c)
	require.Nil(t, p)
	var se *procman.StartError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, syscall.EINVAL)
	require.Zero(t, m.ProcessCount())
	// The child that was started and killed is reaped, its pipes closed
	// (leakcheck), and its handler never called.
	require.Nil(t, c.exit)
}

func TestStderrTailKeepsTheEndOfWhatTheChildWrote(t *testing.T) {
	leakcheck.Check(t)
	var all bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&all, "line %d\n", i)
	}
	m := newManager(t)
	var copied bytes.Buffer
	_, c := start(t, m, procman.Spec{StderrTail: 100, StderrCopy: &copied, Invocation: work("stderr", all.String(), true)})
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	require.Equal(t, all.Bytes()[all.Len()-100:], e.Stderr, "the last 100 bytes")
	require.Equal(t, all.String(), copied.String(), "StderrCopy gets all of it")
}

func TestFramesSentBetweenStepsAreWrittenInOrder(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{})
	const n = 100
	for i := range n {
		require.NoError(t, p.Send(work("echo", strconv.Itoa(i), i == n-1)))
	}
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	var got []string
	for _, a := range c.answers() {
		got = append(got, string(a))
	}
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	require.Equal(t, strings.Join(want, " "), strings.Join(got, " "))
}
