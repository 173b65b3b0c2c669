package procrastinate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/seam"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// Programs: users' mains that the tests run as processes of their own,
// from this test binary. TestMain runs the one that envProgram names
// instead of the tests; it never returns.
const envProgram = "PROCRASTINATE_TEST_PROGRAM"

var programs = map[string]func(){
	"flags":          flagsProgram,
	"forget-start":   func() { forgetfulProgram(forgetStart) },
	"forget-default": func() { forgetfulProgram(forgetDefault) },
	"forget-ignore":  func() { forgetfulProgram(forgetIgnore) },
}

// runProgramIfAsked runs the program that envProgram names, if it names
// one, and exits with it.
func runProgramIfAsked() {
	name, ok := os.LookupEnv(envProgram)
	if !ok {
		return
	}
	p := programs[name]
	if p == nil {
		fmt.Fprintf(os.Stderr, "%s=%q names no program\n", envProgram, name)
		os.Exit(2)
	}
	p()
	os.Exit(0)
}

// runProgram runs the program name with args, and returns its stdout and
// stderr, and its exit error.
func runProgram(t *testing.T, name string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), append(env, envProgram+"="+name)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// needed is the flag that flagsProgram requires.
var needed = flag.Bool("procrastinate-test.needed", false, "the flag that the flags program requires")

// flagsProgram checks its flags before it calls Main, as many programs do,
// and exits with its usage message when the one it requires is missing.
// Then it squares 7 in a child and prints the answer.
func flagsProgram() {
	flag.Parse()
	if !*needed {
		fmt.Fprintln(os.Stderr, "usage: flags -procrastinate-test.needed")
		os.Exit(2)
	}
	procrastinate.Main()
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	v, err := whoAmI.Schedule(d, 7).Value()
	_ = d.Close()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("square:", v.Square)
}

// TestAProgramThatChecksItsFlagsGivesThemToItsChildren: a program that checks its flags before Main
// gives its children the same arguments, so that they pass the check.
func TestAProgramThatChecksItsFlagsGivesThemToItsChildren(t *testing.T) {
	leakcheck.Check(t)
	out, errOut, err := runProgram(t, "flags", nil, "-procrastinate-test.needed")
	require.NoError(t, err, "the program failed; want it to square 7 in a child.\nstdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "square: 49", "the program's output; stderr:\n%s", errOut)
}

// argsOf answers with its child's arguments.
var argsOf = task.Define("procrastinate_test.args", func(ctx context.Context, _ int) ([]string, error) {
	return os.Args, nil
})

func TestChildrenGetTheArguments(t *testing.T) {
	leakcheck.Check(t)
	resetDefault(t)
	args, err := procrastinate.Schedule(argsOf, 0).Value()
	require.NoError(t, err)
	require.Equal(t, os.Args, args, "the child's os.Args; want the parent's")
}

// The environment of forgetfulProgram: where the processes report, and
// how deep the one that reads it is (0 for the program the test started,
// 1 for its children, ...).
const (
	envReports = "PROCRASTINATE_TEST_REPORTS"
	envDepth   = "PROCRASTINATE_TEST_DEPTH"
)

// forgetReport is what one process of forgetfulProgram saw.
type forgetReport struct {
	Depth    int
	Pid      int
	StartErr string // dispatcher.Start's error; empty if it started
	StartIs  bool   // that error is procman.ErrNoMain
	Results  []forgetResult
}

type forgetResult struct {
	Err    string
	Death  bool           // a *result.ChildDeath
	Signal syscall.Signal // what killed the child, if it died
	NoMain bool           // errors.Is(err, procman.ErrNoMain)
}

// How forgetfulProgram schedules its tasks.
type forgetMode int

const (
	forgetStart   forgetMode = iota // on a dispatcher it starts; it exits when Start fails
	forgetDefault                   // on the default dispatcher
	forgetIgnore                    // as forgetStart, but it goes on running when Start fails
)

// forgetfulProgram forgets procrastinate.Main: each of its children runs
// it again from the top. It schedules three tasks, on the default
// dispatcher or on one it starts (exiting at once, as log.Fatal would,
// when Start fails, or going on for an hour), and writes what it saw to a
// file of its own in the reports directory. A process two levels down (a
// child's child) writes its report and exits at once, so that the test
// ends even when children start children.
func forgetfulProgram(mode forgetMode) {
	depth, _ := strconv.Atoi(os.Getenv(envDepth))
	os.Setenv(envDepth, strconv.Itoa(depth+1)) // what its children see
	rep := forgetReport{Depth: depth, Pid: os.Getpid()}
	write := func() {
		b, _ := json.Marshal(rep)
		_ = os.WriteFile(filepath.Join(os.Getenv(envReports), fmt.Sprintf("%d-%d", depth, rep.Pid)), b, 0o600)
	}
	if depth >= 2 {
		write()
		os.Exit(3)
	}
	var rs []*result.Result[whoAmIReply]
	var d *dispatcher.Dispatcher
	if mode == forgetDefault {
		for range 3 {
			rs = append(rs, procrastinate.Schedule(whoAmI, 2))
		}
	} else {
		var err error
		d, err = dispatcher.Start(strategy.Throttled(3), seam.ProcmanOptions(procman.WithHangupWait(100*time.Millisecond)).(dispatcher.Option))
		if err != nil {
			rep.StartErr, rep.StartIs = err.Error(), errors.Is(err, procman.ErrNoMain)
			write()
			fmt.Fprintln(os.Stderr, err)
			if mode == forgetIgnore {
				time.Sleep(time.Hour)
			}
			os.Exit(1)
		}
		for range 3 {
			rs = append(rs, whoAmI.Schedule(d, 2))
		}
	}
	for _, r := range rs {
		_, err := r.Value()
		var death *result.ChildDeath
		fr := forgetResult{Death: errors.As(err, &death), NoMain: errors.Is(err, procman.ErrNoMain)}
		if fr.Death {
			fr.Signal = death.Signal
		}
		if err != nil {
			fr.Err = err.Error()
		}
		rep.Results = append(rep.Results, fr)
	}
	write()
	if mode == forgetDefault {
		procrastinate.Reset()
	} else {
		_ = d.Close()
	}
}

// TestAForgottenMainFailsTheTasksInsteadOfForking: a program that forgets procrastinate.Main is not a
// fork bomb. Its children, which run main again, refuse to start
// dispatchers (an explicit one, or the default one) with an error that
// names Main, and the parent's futures fail with a *result.ChildDeath that
// says so. No child has children of its own. A child that goes on running
// after the refusal is killed after the hangup wait: its future does not
// wait for ever.
func TestAForgottenMainFailsTheTasksInsteadOfForking(t *testing.T) {
	for _, name := range []string{"forget-start", "forget-default", "forget-ignore"} {
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			dir := t.TempDir()
			_, errOut, err := runProgram(t, name, []string{envReports + "=" + dir, envDepth + "=0"})
			t.Logf("the program: %v; its stderr:\n%s", err, errOut)
			byDepth := map[int][]forgetReport{}
			entries, rerr := os.ReadDir(dir)
			require.NoError(t, rerr)
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				require.NoError(t, err)
				var rep forgetReport
				require.NoError(t, json.Unmarshal(b, &rep), "report %s", e.Name())
				byDepth[rep.Depth] = append(byDepth[rep.Depth], rep)
			}
			require.Empty(t, byDepth[2], "processes two levels down (children of children): the program's children started children; want at most one level")
			require.Len(t, byDepth[0], 1, "reports of the program itself")
			require.LessOrEqual(t, len(byDepth[1]), 3, "children of the program; want at most one per task")

			top := byDepth[0][0]
			require.Empty(t, top.StartErr, "the program's own dispatcher failed to start")
			require.Len(t, top.Results, 3, "the program's results")
			t.Logf("the program's first error: %s", top.Results[0].Err)
			for i, r := range top.Results {
				require.True(t, r.Death, "task %d: %q; want a *result.ChildDeath", i, r.Err)
				require.True(t, r.NoMain, "task %d: %q; want errors.Is(err, procman.ErrNoMain)", i, r.Err)
				requireNamesMain(t, r.Err)
				if name == "forget-ignore" {
					require.Equal(t, syscall.SIGKILL, r.Signal, "task %d: %q; want its child killed", i, r.Err)
				}
			}
			for _, rep := range byDepth[1] {
				if name != "forget-default" {
					require.True(t, rep.StartIs, "child %d: Start's error %q; want procman.ErrNoMain", rep.Pid, rep.StartErr)
					requireNamesMain(t, rep.StartErr)
					continue
				}
				require.Len(t, rep.Results, 3, "child %d: results", rep.Pid)
				for i, r := range rep.Results {
					require.True(t, r.NoMain, "child %d, task %d: %q; want errors.Is(err, procman.ErrNoMain)", rep.Pid, i, r.Err)
					requireNamesMain(t, r.Err)
				}
			}
		})
	}
}

// requireNamesMain checks that msg tells where procrastinate.Main goes.
func requireNamesMain(t *testing.T, msg string) {
	t.Helper()
	for _, want := range []string{"procrastinate.Main()", "first thing in main", "TestMain"} {
		require.True(t, strings.Contains(msg, want), "the error %q does not say %q", msg, want)
	}
}
