//go:build !linux

package procman_test

import "testing"

// waitExited fails the test: off Linux no child runs, and there is no
// waitid to ask whether one exited.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	t.Fatalf("waiting for child %d to exit needs Linux", pid)
}
