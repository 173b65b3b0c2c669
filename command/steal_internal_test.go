//go:build linux

package command

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// TestOSExecKeepsItsExitStatuses runs commands, some of which leave a
// process of their group behind, beside os/exec in the same process: each
// os/exec command must get its own exit status, and its process must be
// neither killed nor reaped by the commands' clean-up.
func TestOSExecKeepsItsExitStatuses(t *testing.T) {
	_, err := nullFile() // opened once for the process's life
	require.NoError(t, err, "opening /dev/null")
	leakcheck.Check(t)
	// As the child that runs commands is: what a command leaves comes here
	// where the build has a subreaper; without one, it goes to init.
	leftovers := 0
	if adoptsLeftovers {
		leftovers = 1
		require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "PR_SET_CHILD_SUBREAPER")
		t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	}
	const n = 40
	var wg sync.WaitGroup
	execErrs := make(chan error, n)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			// A sleep long enough to be alive through several commands'
			// clean-up, then its own status.
			err := exec.Command("sh", "-c", "sleep 0.05; exit 7").Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				execErrs <- err
			}
		}
	}()
	for i := 0; i < n; i++ {
		script := "exit 3"
		if i%2 == 0 {
			script = "sleep 1000 & exit 3" // leaves a process in its group
		}
		r, err := run(context.Background(), Cmd{Path: script, Shell: true})
		require.NoError(t, err, "run(%q)", script)
		require.Equal(t, 3, r.ExitCode, "run(%q): ExitCode", script)
		if i%2 == 0 {
			require.Equal(t, leftovers, r.Leftovers, "run(%q): Leftovers; want the sleep counted where a subreaper finds it", script)
		}
	}
	wg.Wait()
	close(execErrs)
	for err := range execErrs {
		t.Errorf("os/exec's sh -c 'exit 7' returned %v; want exit status 7", err)
	}
}
