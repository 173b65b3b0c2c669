//go:build linux

package osproc

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStatReadsThisProcess(t *testing.T) {
	state, ppid, pgid, ok := Stat(os.Getpid())
	require.True(t, ok, "Stat of this process")
	require.Equal(t, os.Getppid(), ppid, "parent")
	require.Equal(t, syscall.Getpgrp(), pgid, "process group")
	require.Contains(t, "RS", string(state), "a running process is R or S")

	_, _, _, ok = Stat(1 << 30)
	require.False(t, ok, "Stat of a pid that cannot exist")
}

func TestChildrenAndHasChildrenSeeAChild(t *testing.T) {
	require.False(t, HasChildren(), "a test binary starts with no child")
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	require.True(t, HasChildren(), "with sleep running")
	require.True(t, slices.Contains(Children(os.Getpid()), cmd.Process.Pid),
		"Children(self) = %v, want it to hold %d", Children(os.Getpid()), cmd.Process.Pid)
	require.Nil(t, Children(1<<30), "Children of a pid that cannot exist")

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	require.False(t, HasChildren(), "once sleep is reaped")
}
