package procman_test

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/procman"
)

// runNoisyChildren runs what a manager logs: a child that exits 0, one
// that exits 3, one that writes garbage and one that cannot start.
func runNoisyChildren(t *testing.T, opts ...procman.Option) (ok, code3, garbage *procman.Process) {
	t.Helper()
	m := newManager(t, opts...)
	ok, _ = start(t, m, procman.Spec{Name: "fine", Invocation: work("echo", "x", true)})
	code3, _ = start(t, m, procman.Spec{Name: "three", Invocation: work("exit", "3", true)})
	garbage, _ = start(t, m, procman.Spec{Name: "garbage", Invocation: work("garbage", "", true)})
	require.NoError(t, m.WaitForAllChildren())
	bad := procman.New(append(opts, procman.WithExecutable("/nonexistent/procman-test"))...)
	require.NoError(t, bad.Setup())
	defer bad.Teardown()
	_, err := bad.CreateProcess(procman.Spec{}, &child{})
	require.Error(t, err)
	return ok, code3, garbage
}

func TestLoggerHearsStartsExitsAndProtocolErrors(t *testing.T) {
	leakcheck.Check(t)
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug})
	ok, code3, garbage := runNoisyChildren(t, procman.WithLogger(log))
	out := buf.String()
	line := func(pattern string) {
		t.Helper()
		require.Regexp(t, regexp.MustCompile(`(?m)^.*`+pattern+`.*$`), out)
	}
	for _, p := range []*procman.Process{ok, code3, garbage} {
		pid := strconv.Itoa(p.Pid())
		line(`\[DEBUG\] child started: pid=` + pid + ` name=` + p.Name())
		line(`\[DEBUG\] child exited: pid=` + pid + ` name=` + p.Name() + ` .*duration=`)
	}
	line(`child exited: pid=` + strconv.Itoa(ok.Pid()) + ` name=fine code=0 `)
	line(`child exited: pid=` + strconv.Itoa(code3.Pid()) + ` name=three code=3 `)
	line(`child exited: pid=` + strconv.Itoa(garbage.Pid()) + ` name=garbage signal=` + syscall.SIGKILL.String())
	line(`\[WARN\]  protocol error: pid=` + strconv.Itoa(garbage.Pid()) + ` name=garbage error=.*unknown frame kind`)
	line(`\[WARN\]  child failed to start: path=/nonexistent/procman-test error=`)
}

// By default a Manager logs nothing: with fd 2 caught in a pipe, the same
// starts, exits, protocol error and failed start write not a byte.
func TestDefaultLoggerIsSilent(t *testing.T) {
	leakcheck.Check(t)
	saved, err := syscall.Dup(2)
	require.NoError(t, err)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	caught := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		caught <- b
	}()
	require.NoError(t, unix.Dup2(int(w.Fd()), 2))
	func() {
		defer func() {
			_ = unix.Dup2(saved, 2)
			syscall.Close(saved)
			w.Close()
		}()
		// The children get fd 2 too: give them /dev/null, so that
		// only the parent's writes are caught.
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		require.NoError(t, err)
		defer null.Close()
		m := newManager(t)
		for _, task := range []string{"echo", "garbage"} {
			start(t, m, procman.Spec{Stderr: null, Invocation: work(task, "", true)})
		}
		require.NoError(t, m.WaitForAllChildren())
		bad := procman.New(procman.WithExecutable("/nonexistent/procman-test"))
		require.NoError(t, bad.Setup())
		_, err = bad.CreateProcess(procman.Spec{}, &child{})
		require.Error(t, err)
		require.NoError(t, bad.Teardown())
	}()
	out := <-caught
	r.Close()
	require.Empty(t, string(out), "the parent wrote on stderr")
}
