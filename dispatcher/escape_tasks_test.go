package dispatcher_test

// The tasks of the escape tests (escape_test.go): tasks that try to get
// away from their child's end, by leaving its process group, closing its
// fds, or starting processes that leave it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// escapeArg is the argument of the escape tasks that the parent-death
// tests run (see parentModeEnv).
type escapeArg struct {
	Dir string // where to write the pid file
	// Sleepers and HupIgnoringSleepers are how many "sleep 600" to start
	// in the child's group, plain and with SIGHUP ignored.
	Sleepers, HupIgnoringSleepers int
}

// reportPids writes pids to a file of this process's own in dir, whole
// under a temporary name first, so that the test never reads half a
// file (see testParentDeath).
func reportPids(dir string, pids []int) error {
	var b strings.Builder
	for _, p := range pids {
		fmt.Fprintln(&b, p)
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".pid.%d", os.Getpid()))
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("pid.%d", os.Getpid())))
}

var (
	// closeAll closes every fd from 3 up, as a program about to exec
	// often does, but for the Go runtime's poller, without which the
	// runtime throws as soon as it polls; then it reports its pid and
	// runs on in pause(2), ignoring its context.
	closeAll = task.Define("dispatcher_test.escape.close-all", func(ctx context.Context, a escapeArg) (int, error) {
		if err := closeAllButThePoller(3); err != nil {
			return 0, err
		}
		if err := reportPids(a.Dir, []int{os.Getpid()}); err != nil {
			return 0, err
		}
		for {
			pause()
		}
	})
	// startSleepers starts a.Sleepers processes of "sleep 600" and
	// a.HupIgnoringSleepers more that ignore SIGHUP, all in its child's
	// group, reports their pids and its own, and blocks, ignoring its
	// context.
	startSleepers = task.Define("dispatcher_test.escape.start-sleepers", func(ctx context.Context, a escapeArg) (int, error) {
		pids := []int{os.Getpid()}
		for i := range a.Sleepers + a.HupIgnoringSleepers {
			cmd := exec.Command("sleep", "600")
			if i >= a.Sleepers {
				cmd = exec.Command("sh", "-c", `trap "" HUP; exec sleep 600`)
			}
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			go func() { _ = cmd.Wait() }()
			pids = append(pids, cmd.Process.Pid)
		}
		if err := reportPids(a.Dir, pids); err != nil {
			return 0, err
		}
		for {
			time.Sleep(time.Hour)
		}
	})
	// startDaemon starts a daemon the classic way, with setsid and a
	// fork in the background (the shell's "&"), so that it is in a
	// session of its own, out of its child's group, and its parent is
	// gone; reports its child's pid and the daemon's; then returns the
	// daemon's pid, or with a.Block blocks for ever, ignoring its
	// context.
	startDaemon = task.Define("dispatcher_test.escape.start-daemon", func(ctx context.Context, a daemonArg) (int, error) {
		pidFile := filepath.Join(a.Dir, fmt.Sprintf(".daemon.%d", os.Getpid()))
		if err := exec.Command("setsid", "sh", "-c", `sleep 600 & echo $! > "$0"`, pidFile).Run(); err != nil {
			return 0, err
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return 0, err
		}
		daemon, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, err
		}
		if err := reportPids(a.Dir, []int{os.Getpid(), daemon}); err != nil {
			return 0, err
		}
		if a.Block {
			for {
				time.Sleep(time.Hour)
			}
		}
		return daemon, nil
	})
)

type daemonArg struct {
	Dir   string
	Block bool // block for ever once the daemon runs
}
