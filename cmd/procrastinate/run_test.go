package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/testio"
)

func TestKeepOrderTagAndSources(t *testing.T) {
	out, errs, code := runIn(t, "", "-j2", "-k", "--tag", "echo", ":::", "a", "b", ":::", "1", "2")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "a 1\ta 1\na 2\ta 2\nb 1\tb 1\nb 2\tb 2\n", out, "stdout")

	out, _, code = runIn(t, "", "-k", "--link", "echo", ":::", "a", "b", "c", ":::", "1", "2")
	require.Equal(t, 0, code, "exit status with --link")
	require.Equal(t, "a 1\nb 2\nc 1\n", out, "stdout with --link")

	out, _, code = runIn(t, "", "-k", "-n2", "echo", ":::", "a", "b", "c")
	require.Equal(t, 0, code, "exit status with -n2")
	require.Equal(t, "a b\nc\n", out, "stdout with -n2")
}

func TestReplacementStrings(t *testing.T) {
	out, errs, code := runIn(t, "", "--dry-run", "-j1", "echo", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}", "{1}", "{2/}", ":::", "/x/y.tar.gz", ":::", "d/e")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "echo /x/y.tar d/e y.tar.gz e /x d y.tar e 1 1 /x/y.tar.gz e\n", out, "--dry-run: {} and its kin take every input")

	// A value with spaces is one argument, quoted in the shell form.
	out, _, _ = runIn(t, "", "--dry-run", "touch", "{}", ":::", "a b")
	require.Equal(t, "touch 'a b'\n", out, "--dry-run of a value with a space")
	dir := t.TempDir()
	_, errs, code = runIn(t, "", "touch", filepath.Join(dir, "{}"), ":::", "a b")
	require.Equal(t, 0, code, "touch 'a b': stderr %q", errs)
	require.FileExists(t, filepath.Join(dir, "a b"), "the file named by one argument with a space")
}

func TestInputsFromFilesAndStdin(t *testing.T) {
	f := filepath.Join(t.TempDir(), "in")
	require.NoError(t, os.WriteFile(f, []byte("x,1\ny,2\n"), 0o644))
	out, _, code := runIn(t, "", "-k", "-a", f, "--colsep", ",", "echo", "{2}", "{1}")
	require.Equal(t, 0, code, "exit status with -a and --colsep")
	require.Equal(t, "1 x\n2 y\n", out, "stdout with -a and --colsep")

	out, _, code = runIn(t, "", "-k", "echo", "::::", f)
	require.Equal(t, 0, code, "exit status with ::::")
	require.Equal(t, "x,1\ny,2\n", out, "stdout with ::::")

	out, _, code = runIn(t, "p\x00q r\x00", "-k", "-0", "echo")
	require.Equal(t, 0, code, "exit status with -0 from stdin")
	require.Equal(t, "p\nq r\n", out, "stdout with -0 from stdin")

	out, _, code = runIn(t, "p:q", "-k", "-d", ":", "echo")
	require.Equal(t, 0, code, "exit status with -d")
	require.Equal(t, "p\nq\n", out, "stdout with -d :")
}

func TestExitStatusAndHalt(t *testing.T) {
	_, _, code := runIn(t, "", "exit {}", ":::", "0", "1", "2", "0")
	require.Equal(t, 2, code, "exit status: the number of failed jobs")

	_, errs, code := runIn(t, "", "-j1", "--halt", "now,fail=1", "exit {}", ":::", "0", "3", "0")
	require.Equal(t, 3, code, "exit status with --halt now,fail=1: the failing job's")
	require.Contains(t, errs, "exit 3", "stderr names the failing job")

	out, _, code := runIn(t, "", "-j1", "-k", "--halt", "soon,success=2", "echo", ":::", "a", "b", "c", "d")
	require.Equal(t, 0, code, "exit status with --halt soon,success=2")
	require.Equal(t, "a\nb\n", out, "jobs run before --halt soon,success=2 stopped the run")
}

func TestRetries(t *testing.T) {
	f := filepath.Join(t.TempDir(), "count")
	script := `n=$(cat ` + f + ` 2>/dev/null || echo 0); echo $((n+1)) > ` + f + `; test {} = x && [ $n -ge 2 ]`
	_, _, code := runIn(t, "", "--retries", "3", script, ":::", "x")
	require.Equal(t, 0, code, "exit status with --retries 3 of a job that fails twice")
	b, err := os.ReadFile(f)
	require.NoError(t, err)
	require.Equal(t, "3\n", string(b), "runs")
}

func TestJoblogAndResume(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	_, _, code := runIn(t, "", "-j1", "--joblog", log, "exit {}", ":::", "0", "1")
	require.Equal(t, 1, code, "exit status")
	lines := strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	require.Len(t, lines, 3, "joblog lines: %q", lines)
	require.Equal(t, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand", lines[0], "header")
	f := strings.Split(lines[2], "\t")
	require.Len(t, f, 9, "columns of %q", lines[2])
	require.Equal(t, []string{"2", ":", "0", "0", "1", "0", "exit 1"}, []string{f[0], f[1], f[4], f[5], f[6], f[7], f[8]}, "Seq, Host, Send, Receive, Exitval, Signal, Command")
	require.Regexp(t, `^\d+\.\d{3}$`, f[2], "Starttime")
	require.Regexp(t, `^ *\d+\.\d{3}$`, f[3], "JobRuntime")
	require.Len(t, f[3], 10, "JobRuntime's width")

	// --resume-failed runs job 2 again, and a new job 3.
	out, _, code := runIn(t, "", "-j1", "--joblog", log, "--resume-failed", "echo", ":::", "0", "1", "2")
	require.Equal(t, 0, code, "exit status of --resume-failed")
	require.Equal(t, "1\n2\n", out, "the jobs --resume-failed ran")
	// --resume runs nothing that is in the joblog.
	out, _, code = runIn(t, "", "-j1", "--joblog", log, "--resume", "echo", ":::", "0", "1", "2", "3")
	require.Equal(t, 0, code, "exit status of --resume")
	require.Equal(t, "3\n", out, "the jobs --resume ran")
}

func TestTimeoutEndsTheJobsTree(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, errs, code := runIn(t, "", "--timeout", "2", "sleep 1000 & echo $! > {}; wait", ":::", pidFile)
	require.Equal(t, 1, code, "exit status: one job failed")
	require.Contains(t, errs, "timed out", "stderr")
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	require.NoError(t, err, "the grandchild's pid")
	require.False(t, testio.Alive(pid), "the job's grandchild %d is alive after the runner returned", pid)
}

func TestBadInputStartsNothing(t *testing.T) {
	dir := t.TempDir()
	touch := filepath.Join(dir, "{}")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown option", []string{"--bogus", "touch", touch, ":::", "a"}, "unknown option: --bogus"},
		{"flag not built", []string{"--tmux", "touch", touch, ":::", "a"}, "--tmux of GNU parallel is not built"},
		{"--pipe's flag not built", []string{"--pipe", "--rrs", "touch", touch}, "--rrs of GNU parallel is not built"},
		{"missing value", []string{"touch", touch, ":::", "a", "-j"}, ""},
		{"bad -j", []string{"-j", "x", "touch", touch, ":::", "a"}, "--jobs"},
		{"bad --halt", []string{"--halt", "later", "touch", touch, ":::", "a"}, "--halt"},
		{"unreadable file", []string{"-a", filepath.Join(dir, "nope"), "touch", touch}, "cannot read the input file"},
		{"file after a good source", []string{"touch", touch, ":::", "a", "::::", filepath.Join(dir, "nope")}, "cannot read the input file"},
		{"no such input", []string{"touch", filepath.Join(dir, "{3}"), ":::", "a", ":::", "b"}, "{3} names input 3"},
		{"no command", []string{}, "no command given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runIn(t, "", tc.args...)
			if tc.name == "missing value" {
				// "-j" after ::: is an input, not a flag: parallel runs it.
				require.Equal(t, 0, code, "exit status; stderr %q", errs)
				require.NoError(t, os.Remove(filepath.Join(dir, "a")))
				require.NoError(t, os.Remove(filepath.Join(dir, "-j")))
				return
			}
			require.Equal(t, 255, code, "exit status; stderr %q", errs)
			require.Contains(t, errs, tc.want, "stderr")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "files the jobs made; want none started")
		})
	}
	log := filepath.Join(dir, "log")
	require.NoError(t, os.WriteFile(log, []byte("Seq\tHost\n1\t:\tjunk\n"), 0o644))
	_, errs, code := runIn(t, "", "--joblog", log, "--resume", "touch", touch, ":::", "a")
	require.Equal(t, 255, code, "exit status with a malformed joblog")
	require.Contains(t, errs, "is malformed at line 2", "stderr")
	require.NoFileExists(t, filepath.Join(dir, "a"), "a job started despite the malformed joblog")
}

// TestKilledRunnerLeavesNoJob SIGKILLs the runner while its jobs run:
// each child dies with its parent, and takes its command with it.
func TestKilledRunnerLeavesNoJob(t *testing.T) {
	dir := t.TempDir()
	var fifos []string
	for _, n := range []string{"f1", "f2"} {
		p := filepath.Join(dir, n)
		require.NoError(t, unix.Mkfifo(p, 0o600), "mkfifo")
		fifos = append(fifos, p)
	}
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "-j2", `sleep 1000 & echo $$ $! > {}; wait`, ":::", fifos[0], fifos[1])
	cmd.Env = append(os.Environ(), envRunner+"=1")
	require.NoError(t, cmd.Start(), "starting the runner")
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var pids []int
	for _, f := range fifos {
		got := make(chan string, 1)
		go func() {
			b, _ := os.ReadFile(f)
			got <- string(b)
		}()
		var line string
		select {
		case line = <-got:
		case <-exited:
			if w, err := os.OpenFile(f, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			<-got
			t.Fatalf("the runner exited before its job wrote to %s", f)
		}
		for _, w := range strings.Fields(line) {
			pid, err := strconv.Atoi(w)
			require.NoError(t, err, "a pid from %s", f)
			pids = append(pids, pid)
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL), "SIGKILL to the runner")
	<-exited
	for _, pid := range pids {
		gone, err := testio.WaitExited(pid, 0, 1500*time.Millisecond)
		require.NoError(t, err)
		require.True(t, gone, "job process %d alive 1.5 s after the runner was killed", pid)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err, "reading %s", p)
	return string(b)
}

func TestBarWithoutATerminalWritesASummary(t *testing.T) {
	out, errs, code := runIn(t, "", "-k", "--bar", "echo", ":::", "a", "b")
	require.Equal(t, 0, code, "exit status")
	require.Equal(t, "a\nb\n", out, "stdout")
	require.Contains(t, errs, "2/2 done (100%)", "stderr: the bar's last line")
}

func TestRetryFailedRunsTheJoblogsFailures(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	_, _, code := runIn(t, "", "-j1", "--joblog", log, "echo {}; exit {}", ":::", "0", "4")
	require.Equal(t, 1, code, "exit status of the first run")
	out, _, code := runIn(t, "", "--joblog", log, "--retry-failed")
	require.Equal(t, 1, code, "exit status of --retry-failed: job 2 fails again")
	require.Equal(t, "4\n", out, "--retry-failed ran the failed job's command from the joblog")
	lines := strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	require.Len(t, lines, 4, "joblog lines after --retry-failed: %q", lines)
	require.True(t, strings.HasPrefix(lines[3], "2\t"), "the appended line is job 2's: %q", lines[3])
}

func TestEventsAndVerbose(t *testing.T) {
	ev := filepath.Join(t.TempDir(), "events")
	out, _, code := runIn(t, "", "-v", "--events", ev, "sh -c 'echo oops >&2; exit {}'", ":::", "3")
	require.Equal(t, 1, code, "exit status")
	require.Equal(t, "sh -c 'echo oops >&2; exit 3'\n", out, "-v prints the command")
	var e event
	require.NoError(t, json.Unmarshal([]byte(readFile(t, ev)), &e), "the events file: one JSON line")
	require.Equal(t, 1, e.Seq, "seq")
	require.Equal(t, 3, e.ExitCode, "exit_code")
	require.Equal(t, "oops\n", e.Stderr, "stderr_tail")
	require.Positive(t, e.MaxRSS, "max_rss_bytes")
	require.Equal(t, 1, e.Tries, "tries")
}

func TestNiceAndLimitAS(t *testing.T) {
	base, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	require.NoError(t, err)
	out, errs, code := runIn(t, "", "--nice", "2", "--limit-as", "1G", "sh -c 'nice; ulimit -v'", ":::", "x")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, strconv.Itoa(20-base+2)+"\n1048576\n", out, "the job's nice level and RLIMIT_AS in KiB")
}

func TestLoadAndMemfreeHoldJobsBack(t *testing.T) {
	l, ok := loadAverage()
	require.True(t, ok, "reading /proc/loadavg")
	m, ok := memAvailable()
	require.True(t, ok, "reading MemAvailable in /proc/meminfo")
	require.True(t, roomFor(&options{load: l + 1000, memfree: 1}), "room with a load bound above the load, and 1 byte wanted free")
	require.False(t, roomFor(&options{memfree: m + 1<<40}), "room with a terabyte more wanted free than there is")
	if l > 0 {
		require.False(t, roomFor(&options{load: l / 2}), "room with a load bound below the load %.2f", l)
	}

	out, errs, code := runIn(t, "", "-k", "--load", "100000", "--memfree", "1k", "echo", ":::", "a", "b")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "a\nb\n", out, "stdout with bounds that hold nothing back")
}

func TestTimeoutPercentOfTheMedian(t *testing.T) {
	_, errs, code := runIn(t, "", "-j1", "--timeout", "300%", "sleep", ":::", "0.1", "0.1", "0.1", "1000")
	require.Equal(t, 1, code, "exit status: the last job timed out; stderr %q", errs)
	require.Contains(t, errs, "timed out:\nsleep 1000", "stderr names the job that timed out")
}
