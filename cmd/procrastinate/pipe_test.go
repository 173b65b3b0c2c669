package main

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

func seqLines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString(strconv.Itoa(i) + "\n")
	}
	return b.String()
}

func TestPipe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stdin     string
		args      []string
		want      string
		wantError string // in stderr
	}{
		{"--block: blocks end at a record's end", seqLines(1, 10), []string{"--pipe", "-k", "--block", "5", "-j1", "echo {#}:; cat"}, "1:\n1\n2\n2:\n3\n4\n3:\n5\n6\n4:\n7\n8\n5:\n9\n10\n", ""},
		{"--block of whole records", seqLines(1, 10), []string{"--pipe", "-k", "--block", "6", "-j1", "echo {#}:; cat"}, "1:\n1\n2\n3\n2:\n4\n5\n6\n3:\n7\n8\n9\n4:\n10\n", ""},
		{"a record longer than --block", "1\n2\n3333333333\n4\n5\n", []string{"--pipe", "-k", "--block", "4", "-j1", "echo {#}:; cat"}, "1:\n1\n2\n2:\n3333333333\n3:\n4\n5\n", "a record was longer than 4"},
		{"-N", seqLines(1, 10), []string{"--pipe", "-k", "-N3", "-j1", `echo {#}-{%}:; cat | tr "\n" " "; echo`}, "1-1:\n1 2 3 \n2-1:\n4 5 6 \n3-1:\n7 8 9 \n4-1:\n10 \n", ""},
		{"--recend", "a;b;c;", []string{"--pipe", "-k", "--recend", ";", "-N1", "cat; echo"}, "a;\nb;\nc;\n", ""},
		{"--recend with an escape", "a;b;c", []string{"--pipe", "-k", "--recend", `\n`, "echo {#}:; cat"}, "1:\na;b;c", ""},
		{"--recstart", "a\nXb\nc\nXd\n", []string{"--pipe", "-k", "--recstart", "X", "-N1", "echo {#}:; cat"}, "1:\na\n2:\nXb\nc\n3:\nXd\n", ""},
		{"--header :", "h\n1\n2\n3\n", []string{"--pipe", "-k", "--header", ":", "-N2", "echo ==; cat"}, "==\nh\n1\n2\n==\nh\n3\n", ""},
		{"--header 2", "h1\nh2\n1\n2\n3\n", []string{"--pipe", "-k", "--header", "2", "-N2", "echo ==; cat"}, "==\nh1\nh2\n1\n2\n==\nh1\nh2\n3\n", ""},
		{"--tag has no value", "1\n2\n", []string{"--pipe", "-k", "--tag", "-N1", "cat"}, "\t1\n\t2\n", ""},
		{"a last record without its end", "aaa\nbbb", []string{"--pipe", "-k", "echo {#}:; cat"}, "1:\naaa\nbbb", ""},
		{"no input, no job", "", []string{"--pipe", "-k", "echo ran"}, "", ""},
		{"--line-buffer", "a\nb\n", []string{"--pipe", "-k", "--line-buffer", "-N1", "--tag", "cat"}, "\ta\n\tb\n", ""},
		{"--line-buffer --cat", "a\nb\n", []string{"--pipe", "-k", "--line-buffer", "-N1", "--cat", "cat"}, "a\nb\n", ""},
		{"--cat", seqLines(1, 5), []string{"--pipe", "-k", "-N2", "--cat", "wc -l < {}"}, "2\n2\n1\n", ""},
		{"--fifo", seqLines(1, 5), []string{"--pipe", "-k", "-N2", "--fifo", "wc -l < {}"}, "2\n2\n1\n", ""},
		{"--fifo that the job does not open", seqLines(1, 5), []string{"--pipe", "-k", "-N2", "--fifo", "sh -c 'echo x' {}"}, "x\nx\nx\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			out, errs, code := runIn(t, tc.stdin, tc.args...)
			require.Equal(t, 0, code, "exit status; stderr %q", errs)
			require.Equal(t, tc.want, out, "stdout of %q with stdin %q", tc.args, tc.stdin)
			require.Contains(t, errs, tc.wantError, "stderr")
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			require.Empty(t, left, "files the run left in TMPDIR")
		})
	}

	out, errs, code := runIn(t, seqLines(1, 3), "--pipe", "-k", "-N1", "--joblog", filepath.Join(t.TempDir(), "log"), "exit {#}")
	require.Equal(t, 3, code, "exit status: three jobs failed; stderr %q", errs)
	require.Empty(t, out, "stdout")
}

func TestPipeRefused(t *testing.T) {
	dir := t.TempDir()
	touch := "touch " + filepath.Join(dir, "x")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"--pipe with :::", []string{"--pipe", touch, ":::", "a"}, ":::"},
		{"--pipe with --bar", []string{"--pipe", "--bar", touch}, "--bar"},
		{"--pipe with --shuf", []string{"--pipe", "--shuf", touch}, "--shuf"},
		{"--pipe with {##}", []string{"--pipe", "--plus", touch + "{##}"}, "{##}"},
		{"-N without --pipe", []string{"-N", "2", touch, ":::", "a"}, "-N"},
		{"--header without --pipe", []string{"--header", ":", touch, ":::", "a"}, "--header"},
		{"a bad --block", []string{"--pipe", "--block", "x", touch}, "--block"},
		{"a bad --header", []string{"--pipe", "--header", "(", touch}, "--header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runIn(t, "a\n", tc.args...)
			require.Equal(t, 255, code, "exit status; stderr %q", errs)
			require.Contains(t, errs, tc.want, "stderr")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "files the jobs made; want none started")
		})
	}
}

// TestPipeStreams runs the first block's job while stdin is still open:
// the input is not read whole before the jobs start.
func TestPipeStreams(t *testing.T) {
	leakcheck.Check(t)
	pr, pw := io.Pipe()
	out, errs := watch("1:a\n"), watch()
	code := make(chan int, 1)
	go func() {
		c := runMain([]string{"--pipe", "-k", "-N1", `echo {#}:$(cat)`}, pr, out, errs)
		pr.CloseWithError(io.ErrClosedPipe) // a writer blocked after an early return goes on
		code <- c
	}()
	// -N1: the first record is a block once the second one starts.
	wrote := make(chan error, 1)
	go func() {
		_, err := pw.Write([]byte("a\nb\n"))
		wrote <- err
	}()
	waitFor(t, out, code, "the first block's output while stdin is open")
	require.NoError(t, <-wrote, "writing the records")
	require.NoError(t, pw.Close())
	require.Equal(t, 0, <-code, "exit status; stderr %q", errs.String())
	require.Equal(t, "1:a\n2:b\n", out.String(), "stdout")
}
