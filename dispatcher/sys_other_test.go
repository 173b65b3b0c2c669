//go:build !linux

package dispatcher_test

import "syscall"

// mapPopulate: off Linux, no such flag (no test that uses it runs there).
const mapPopulate = 0

// cloexecPipe makes a pipe whose ends close on exec (off Linux, in two
// steps: there is no pipe2 everywhere).
func cloexecPipe() ([2]int, error) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		return p, err
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return p, nil
}

// closeAllButThePoller: off Linux no test that uses it runs.
func closeAllButThePoller(from int) error { return syscall.ENOSYS }

// pause: off Linux no test that uses it runs; it waits for ever.
func pause() { select {} }
