package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// TestMain calls procrastinate.Main first, as main does: the children of
// these tests are re-executions of the test binary.
func TestMain(m *testing.M) {
	procrastinate.Main()
	// Under -race every process sleeps a second at exit unless told not
	// to; the children are processes that exit.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

func TestRunRunsEachTaskInAChildOfItsOwn(t *testing.T) {
	leakcheck.Check(t)
	var pids []int
	var err error
	out, cerr := captureFD1(func() {
		pids, err = run(strategy.Default(), 10, 20*time.Millisecond)
	})
	require.NoError(t, cerr, "capturing fd 1")
	require.NoError(t, err, "run")
	require.Len(t, pids, 10)
	require.NoError(t, check(pids, out))
	require.Equal(t, 20, strings.Count(out, "\n"), "lines written by the children:\n%s", out)
}

// The children print their pids, which differ from run to run; what does
// not differ is that there are ten of them, none of them this process,
// and that each said it was starting before it said it was done.
func Example() {
	var pids []int
	var err error
	out, cerr := captureFD1(func() {
		pids, err = run(strategy.Throttled(5), 10, 10*time.Millisecond)
	})
	if err = errors.Join(err, cerr, check(pids, out)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(pids), "tasks ran in 10 other processes, each starting and then done")
	// Output:
	// 10 tasks ran in 10 other processes, each starting and then done
}

// check reports what is wrong with the pids that run returned and the
// lines that the children printed.
func check(pids []int, out string) error {
	seen := map[int]bool{}
	for _, pid := range pids {
		if pid == os.Getpid() {
			return fmt.Errorf("a task ran in the parent (pid %d)", pid)
		}
		if seen[pid] {
			return fmt.Errorf("pid %d answered twice; pids %v", pid, pids)
		}
		seen[pid] = true
		// The children's stdout is ours: each said when it started and
		// when it was done, in that order.
		start := strings.Index(out, fmt.Sprintf("pid %d starting\n", pid))
		done := strings.Index(out, fmt.Sprintf("pid %d done\n", pid))
		if start < 0 || done < start {
			return fmt.Errorf("pid %d: want its starting line before its done line; the children wrote:\n%s", pid, out)
		}
	}
	if len(seen) != 10 {
		return fmt.Errorf("%d distinct pids; want 10", len(seen))
	}
	return nil
}

// captureFD1 runs f with file descriptor 1 pointing into a pipe, and
// returns what was written there: by this process, and by the children
// started meanwhile, which inherit fd 1. (Setting os.Stdout would not do:
// a variable does not cross into a child.)
func captureFD1(f func()) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		got <- string(b)
	}()
	err = testio.WithStdout(w, f)
	w.Close() // the reader sees EOF once the children's copies are gone too
	return <-got, err
}
