//go:build linux

package procman

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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
	require.Equal(t, "EXTRA=1", env[len(env)-1], "extra comes last, so that it wins")

	env = childEnv(nil, true, -2)
	require.Equal(t, 1, count(env, cpuLimitKey+"=1"))
	require.Equal(t, 1, count(env, niceKey+"=-2"))
	require.Zero(t, count(env, niceKey+"=3"))
	require.Equal(t, 1, count(env, cookieKey+"="+cookieValue))
}
