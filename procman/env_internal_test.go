//go:build linux

package procman

import (
	"github.com/procrastinate-go/procrastinate/internal/childenv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// A child is told of a CPU time limit that its parent sets after it
// starts, so that it need not ask the kernel on the way to its first task,
// and of the nice level the parent sets, which it sets again; marks
// inherited from the parent's own environment are not passed on.
func TestChildEnvMarksACPULimitAndANiceLevel(t *testing.T) {
	require.False(t, limitsCPU(nil))
	require.False(t, limitsCPU([]Rlimit{{Resource: unix.RLIMIT_AS, Cur: 1 << 30, Max: 1 << 30}}))
	require.False(t, limitsCPU([]Rlimit{{Resource: unix.RLIMIT_CPU, Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}}))
	require.True(t, limitsCPU([]Rlimit{{Resource: unix.RLIMIT_AS, Cur: 1 << 30, Max: 1 << 30}, {Resource: unix.RLIMIT_CPU, Cur: 1, Max: 2}}))

	t.Setenv(cookieKey, "procrastinate-go.v0")
	t.Setenv(cpuLimitKey, "1")
	t.Setenv(niceKey, "3")
	count := func(env []string, kv string) int {
		n := 0
		for _, e := range env {
			if e == kv {
				n++
			}
		}
		return n
	}
	env := childEnv([]string{"EXTRA=1"}, false, 0)
	require.Equal(t, 1, count(env, cookieKey+"="+cookieValue))
	require.Zero(t, count(env, cookieKey+"=procrastinate-go.v0"), "the parent's own cookie is not passed on")
	require.Zero(t, count(env, cpuLimitKey+"=1"), "no limit, no mark, whatever the parent's environment holds")
	require.Zero(t, count(env, niceKey+"=3"), "no nice level, no mark, whatever the parent's environment holds")
	require.Equal(t, "EXTRA=1", env[len(env)-1], "extra comes last")

	env = childEnv(nil, true, -2)
	require.Equal(t, 1, count(env, cpuLimitKey+"=1"))
	require.Equal(t, 1, count(env, niceKey+"=-2"))
	require.Zero(t, count(env, niceKey+"=3"))
	require.Equal(t, 1, count(env, cookieKey+"="+cookieValue))
}

// A variable that Spec.Env sets is in the child's environment once, with
// its last value there: a Go child takes the first of two entries, so the
// parent's own would otherwise win.
func TestChildEnvLetsExtraReplaceAVariable(t *testing.T) {
	t.Setenv("PROCMAN_TEST_REPLACED", "parent")
	t.Setenv("PROCMAN_TEST_KEPT", "parent")
	env := childEnv([]string{"PROCMAN_TEST_REPLACED=first", "PROCMAN_TEST_NEW=1", "PROCMAN_TEST_REPLACED=last"}, false, 0)
	var got []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "PROCMAN_TEST_") {
			got = append(got, kv)
		}
	}
	require.Equal(t, []string{"PROCMAN_TEST_KEPT=parent", "PROCMAN_TEST_NEW=1", "PROCMAN_TEST_REPLACED=last"}, got)
}

// The manager's own variables cannot come through Spec.Env, nor entries
// that are not variables: CreateProcess refuses them, and starts nothing.
func TestSpecEnvMayNotSetTheManagersVariables(t *testing.T) {
	leakcheck.Check(t)
	m := New()
	require.NoError(t, m.Setup())
	defer m.Teardown()
	for _, key := range []string{cookieKey, cpuLimitKey, niceKey} {
		_, err := m.CreateProcess(Spec{Env: []string{"A=1", key + "=7"}}, &handler{})
		require.EqualError(t, err, "procman: Spec.Env: "+key+" is set by the manager itself; leave it out")
		require.Zero(t, m.ProcessCount())
	}
	// Nor can an entry that is not KEY=VALUE, or that holds a NUL byte,
	// which no environment can carry.
	for entry, want := range map[string]string{
		"A":       `entry "A" is not KEY=VALUE`,
		"=1":      `entry "=1" is not KEY=VALUE`,
		"":        `entry "" is not KEY=VALUE`,
		"A=1\x00": "entry for A holds a NUL byte",
	} {
		_, err := m.CreateProcess(Spec{Env: []string{entry}}, &handler{})
		require.EqualError(t, err, "procman: Spec.Env: "+want)
		require.Zero(t, m.ProcessCount())
	}
	require.NoError(t, childenv.Check([]string{"A=", "B=1=2", "PROCRASTINATE_TRACE=/tmp"}))
}

// The child sets the nice level on its group again as it takes its first
// invocation: a thread that its runtime was starting while the parent set
// it could keep the old one. Here the parent's call does nothing, and
// every thread still ends up at the level.
func TestTheChildSetsItsNiceLevelItself(t *testing.T) {
	leakcheck.Check(t)
	self, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	require.NoError(t, err)
	if 20-self >= 19 {
		t.Skip("this process already runs at nice 19")
	}
	setGroupPriority = func(which, who, prio int) error { return nil }
	t.Cleanup(func() { setGroupPriority = unix.Setpriority })
	m := New()
	require.NoError(t, m.Setup())
	defer m.Teardown()
	h := &handler{}
	_, err = m.CreateProcess(Spec{Nice: 19, Invocation: EncodeInvocation("nice", nil, true)}, h)
	require.NoError(t, err)
	h.wait(t, m)
	require.True(t, h.exit.Success(), "%v", h.exit)
	require.Len(t, h.answers, 1)
	levels := strings.Fields(string(h.answers[0]))
	require.NotEmpty(t, levels)
	for i, n := range levels {
		require.Equal(t, "19", n, "thread %d of %d", i, len(levels))
	}
}
