//go:build linux

package dispatcher_test

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// mapPopulate is mmap's flag to fault a mapping in as it is made.
const mapPopulate = unix.MAP_POPULATE

// cloexecPipe makes a pipe whose ends close on exec.
func cloexecPipe() ([2]int, error) {
	var p [2]int
	err := syscall.Pipe2(p[:], syscall.O_CLOEXEC)
	return p, err
}

// closeFrom closes every fd from fd up, as close_range(2) does.
func closeFrom(fd uint) error { return unix.CloseRange(fd, ^uint(0), 0) }

// pause waits in pause(2) until a signal comes.
func pause() { _ = unix.Pause() }
