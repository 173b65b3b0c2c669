package dispatcher_test

// The tasks of the escape tests (escape_test.go): tasks that try to get
// away from their child's end, by leaving its process group, closing its
// fds, or starting processes that leave it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/task"
)

var (
	// leaveGroup moves its child into the process group of the child's
	// parent, writes the child's pid to the gate's log, says that it
	// started and blocks for ever, ignoring its context.
	leaveGroup = task.Define("dispatcher_test.escape.leave-group", func(ctx context.Context, a holdArg) (int, error) {
		pgid, err := syscall.Getpgid(os.Getppid())
		if err != nil {
			return 0, err
		}
		if err := syscall.Setpgid(0, pgid); err != nil {
			return 0, fmt.Errorf("setpgid(0, %d): %w", pgid, err)
		}
		if err := appendTo(filepath.Join(a.Dir, "log"), fmt.Sprintf("%d\n", os.Getpid())); err != nil {
			return 0, err
		}
		if err := announce(a.Dir); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour)
		}
	})
)
