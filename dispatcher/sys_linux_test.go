//go:build linux

package dispatcher_test

import (
	"os"
	"strconv"
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

// closeAllButThePoller closes every fd from fd up except the Go runtime's
// poller (its epoll set and the eventfd that wakes it): every other fd,
// the message pipes and the lifeline among them, goes, as with
// close_range, while the runtime, whose monitor thread polls that set
// once it exists, goes on running.
func closeAllButThePoller(from int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < from {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed since
		}
		if link == "anon_inode:[eventpoll]" || link == "anon_inode:[eventfd]" {
			continue
		}
		_ = unix.Close(fd)
	}
	return nil
}

// pause waits in pause(2) until a signal comes.
func pause() { _ = unix.Pause() }
