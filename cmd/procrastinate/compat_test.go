package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCompatibleWithGNUParallel runs the same inputs through GNU parallel
// and through the runner, and compares stdout, the exit status and the
// joblog's columns (all but Starttime and JobRuntime). It is skipped
// where parallel is not installed (apt-get install parallel).
func TestCompatibleWithGNUParallel(t *testing.T) {
	gnu, err := exec.LookPath("parallel")
	if err != nil {
		t.Skip("GNU parallel is not installed (apt-get install parallel): nothing to compare with")
	}
	if out, err := exec.Command(gnu, "--version").Output(); err != nil || !bytes.Contains(out, []byte("GNU parallel")) {
		t.Skipf("%s is not GNU parallel (moreutils has one of that name)", gnu)
	}
	dir := t.TempDir()
	csv := filepath.Join(dir, "in.csv")
	require.NoError(t, os.WriteFile(csv, []byte("a,1\nb,2\n"), 0o644))
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		log   bool // compare joblogs too
	}{
		{"keep order", "", []string{"-k", "echo", ":::", "a", "b c", "d"}, true},
		{"tag, two sources", "", []string{"-k", "--tag", "echo", ":::", "a", "b", ":::", "1", "2"}, true},
		{"positional", "", []string{"-k", "echo", "{2}", "{1}", ":::", "a", "b", ":::", "1", "2"}, true},
		{"failures count", "", []string{"exit {}", ":::", "0", "1", "2"}, true},
		{"halt now on a failure", "", []string{"-j1", "--halt", "now,fail=1", "exit {}", ":::", "0", "3", "0"}, true},
		{"halt soon on successes", "", []string{"-j1", "-k", "--halt", "soon,success=2", "echo", ":::", "a", "b", "c"}, true},
		{"-n2", "", []string{"-k", "-n2", "echo", ":::", "a", "b", "c"}, true},
		{"dry run", "", []string{"--dry-run", "-j1", "echo", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}", ":::", "/x/y.tar.gz", "z"}, false},
		{"trailing and doubled slashes", "", []string{"-k", "-j1", "echo", "[{.}]", "[{/}]", "[{/.}]", "[{//}]", ":::", "dir/", "/a/b/", "/", "a//b", "x/.y/", "/top", "./x"}, false},
		{"extensions of dotfiles", "", []string{"-k", "-j1", "echo", "{.}", "{/}", "{/.}", "{//}", ":::", ".bashrc", "dir/.bashrc", "a.", "/x/.y.z", "dir.x/file"}, false},
		{"colsep from a file", "", []string{"-k", "--colsep", ",", "echo", "{2}-{1}", "::::", csv}, true},
		{"-a", "", []string{"-k", "-a", csv, "echo"}, true},
		{"stdin, -0", "p\x00q r\x00", []string{"-k", "-0", "echo"}, true},
		{"stdin, -d", "p:q", []string{"-k", "-d", ":", "echo"}, true},
		{"link", "", []string{"-k", "--link", "echo", ":::", "a", "b", "c", ":::", "1", "2"}, true},
		{"a shell line", "", []string{"-k", "echo {} | tr a-z A-Z", ":::", "abc", "de"}, true},
		{"a builtin", "", []string{"-k", "cd / && pwd", ":::", "x"}, true},
		{"inputs as commands", "", []string{"-k", ":::", "echo a", "echo b", "exit 2"}, true},
		{"sequence and slot", "", []string{"-k", "-j1", "echo", "{#}", "{%}", ":::", "a", "b"}, true},
		{"timeout", "", []string{"--timeout", "1", "sleep", ":::", "5", "0"}, true},
		{"retries", "", []string{"--retries", "2", "exit 1", ":::", "x"}, true},
		{"a missing program", "", []string{"no-such-program-here", ":::", "a"}, true},
		{"-I", "", []string{"-k", "-I", "XX", "echo", "XX", "{}", "{.}", "{#}", "{1}", ":::", "a.b", "c d"}, true},
		{"-I unused", "", []string{"-k", "-I", "{x}", "echo", ":::", "a", "b"}, true},
		{"--plus", "", []string{"--dry-run", "-j1", "--plus", "echo", "{..}", "{+..}", "{/..}", "{+/}", "{+.}", "{...}", "{+...}", "{/...}", "{##}", "{0#}", "{0%}", "{2..}", ":::", "a/b.tar.gz", "x", "d.x/f", ".bashrc", ":::", "1", "2"}, false},
		{"--plus in a shell line", "", []string{"-k", "--plus", "echo {/..} | tr a-z A-Z", ":::", "a/b.c.d", "e.f"}, true},
		{"-X spread", "", []string{"-j4", "-k", "-X", "echo", ":::", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, true},
		{"-X context", "", []string{"-j2", "-k", "-X", "echo", "pic{}.jpg", "{#}-x{.}y", ":::", "a.b", "c.d", "e"}, true},
		{"-m", "", []string{"-j1", "-k", "-m", "echo", "pic{}.jpg", "x{.}y", ":::", "a.b", "c.d", "e"}, true},
		{"-X -s", "", []string{"-j2", "-k", "-X", "-s", "20", "echo", ":::", "aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff", "gggg"}, true},
		{"-X -n", "", []string{"-j2", "-k", "-X", "-n", "3", "echo", ":::", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}, true},
		{"-m -s, {} twice", "", []string{"-j2", "-k", "-m", "-s", "20", "echo", "{}", "{}", ":::", "a", "b", "c", "d", "e", "f", "g"}, true},
		{"--xargs", "", []string{"-j3", "-k", "--xargs", "echo", ":::", "1", "2", "3", "4", "5"}, true},
		{"-X in a shell line", "", []string{"-j1", "-k", "-X", "echo x{}y | tr a-z A-Z", ":::", "a", "b c"}, true},
		{"-X, two sources", "", []string{"-j1", "-k", "-X", "--tag", "echo", "pic{}.jpg", ":::", "a", "b", ":::", "x", "y"}, true},
		{"-X -s too long", "", []string{"-j1", "-k", "-X", "-s", "12", "echo", ":::", "a", "aaaaaaaaaaaaaaaaaaaaaaa"}, false},
		{"--shuf", "", []string{"--shuf", "echo", "{}", ":::", "a", "b", "c", "d", "e"}, false},
		{"--tagstring", "", []string{"-k", "-j1", "--tagstring", "{}-{#}-{%}-{.}", "sh -c 'echo x; echo y'", ":::", "a.b", "c d"}, true},
		{"--tagstring over --tag", "", []string{"-k", "--tag", "--tagstring", "T{}", "echo", ":::", "a"}, true},
		{"--files", "", []string{"-k", "--files", "--tag", "echo out {}; echo err >&2", ":::", "a", "b"}, false},
		{"--results", "", []string{"-k", "--results", "RESULTS", "echo out {}; echo err >&2; exit {#}", ":::", "a", "b/c", ""}, true},
		{"--results, two sources", "", []string{"-k", "--results", "RESULTS", "echo {1}; echo {2} >&2", ":::", "a", "b", ":::", "x"}, true},
		{"--results with a replacement string", "", []string{"-k", "--results", "RESULTS_{}", "echo", ":::", "a", "b"}, true},
		{"--results --files", "", []string{"-k", "--results", "RESULTS", "--files", "echo", ":::", "a", "b"}, true},
		{"--line-buffer -k", "", []string{"-k", "--line-buffer", "-j2", "echo {}1; echo {}e >&2; echo {}2", ":::", "a", "b", "c"}, false},
		{"--line-buffer, a last line without newline", "", []string{"-k", "--lb", "--tag", `echo x; printf "y\nz"`, ":::", "1"}, false},
		{"--line-buffer", "", []string{"--line-buffer", "--tagstring", "{#}", "echo {}1; echo {}2", ":::", "a", "b", "c"}, false},
		{"--pipe --block", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", []string{"-k", "--pipe", "--block", "5", "-j1", "echo {#}:; cat"}, true},
		{"--pipe, a record longer than --block", "1\n2\n3333333333\n4\n5\n", []string{"-k", "--pipe", "--block", "4", "-j1", "echo {#}:; cat"}, true},
		{"--pipe -N", "1\n2\n3\n4\n5\n6\n7\n", []string{"-k", "--pipe", "-N3", `echo {#}:; cat | tr "\n" " "; echo`}, true},
		{"--pipe --recend", "a;b;c;", []string{"-k", "--pipe", "--recend", ";", "-N1", "cat; echo"}, true},
		{"--pipe --recstart", "a\nXb\nc\nXd\n", []string{"-k", "--pipe", "--recstart", "X", "-N1", "echo {#}:; cat"}, true},
		{"--pipe --header :", "h\n1\n2\n3\n", []string{"-k", "--pipe", "--header", ":", "-N2", "echo ==; cat"}, true},
		{"--pipe --cat", "1\n2\n3\n4\n5\n", []string{"-k", "--pipe", "-N2", "--cat", "wc -l < {}"}, false},
		{"--pipe --fifo", "1\n2\n3\n4\n5\n", []string{"-k", "--pipe", "-N2", "--fifo", "wc -l < {}"}, false},
		{"--pipe, failures", "1\n2\n3\n", []string{"--pipe", "-N1", "cat >/dev/null; exit {#}"}, true},
		{"unknown option", "", []string{"--no-such-option", "echo", ":::", "a"}, false},
		{"missing argument file", "", []string{"-a", filepath.Join(dir, "nope"), "echo"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			theirLog, ourLog := filepath.Join(t.TempDir(), "theirs"), filepath.Join(t.TempDir(), "ours")
			theirArgs, ourArgs := tc.args, tc.args
			theirRes, ourRes := filepath.Join(t.TempDir(), "theirs"), filepath.Join(t.TempDir(), "ours")
			if slices.Contains(tc.args, "--results") {
				theirArgs, ourArgs = resultsIn(tc.args, theirRes), resultsIn(tc.args, ourRes)
			}
			if slices.Contains(tc.args, "--files") {
				t.Setenv("TMPDIR", t.TempDir())
			}
			if tc.log {
				theirArgs = append([]string{"--joblog", theirLog}, theirArgs...)
				ourArgs = append([]string{"--joblog", ourLog}, ourArgs...)
			}
			c := exec.Command(gnu, append([]string{"--will-cite"}, theirArgs...)...)
			c.Stdin = strings.NewReader(tc.stdin)
			theirOut, err := c.Output()
			theirCode := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				theirCode = ee.ExitCode()
			} else {
				require.NoError(t, err, "running GNU parallel")
			}
			ourOut, ourErr, ourCode := runIn(t, tc.stdin, ourArgs...)
			require.Equal(t, theirCode, ourCode, "exit status: GNU parallel's, and ours (our stderr: %q)", ourErr)
			if theirCode == 255 {
				return // a usage error: parallel prints its usage on stdout, we print the mistake on stderr
			}
			if slices.Contains(tc.args, "--files") && !slices.Contains(tc.args, "--results") {
				require.Equal(t, filesOutput(t, string(theirOut)), filesOutput(t, ourOut), "the outputs --files names: GNU parallel's, and ours")
				return
			}
			if slices.Contains(tc.args, "--results") {
				theirOut = bytes.ReplaceAll(theirOut, []byte(theirRes), []byte("RESULTS"))
				ourOut = strings.ReplaceAll(ourOut, ourRes, "RESULTS")
			}
			if tc.args[0] == "-k" || tc.args[0] == "--dry-run" || tc.args[1] == "-k" {
				require.Equal(t, string(theirOut), ourOut, "stdout: GNU parallel's, and ours")
			} else {
				require.Equal(t, sortedLines(string(theirOut)), sortedLines(ourOut), "stdout's lines: GNU parallel's, and ours")
			}
			if slices.Contains(tc.args, "--results") {
				theirs := tree(t, theirRes)
				require.NotEmpty(t, theirs, "the files of GNU parallel's --results")
				require.Equal(t, theirs, tree(t, ourRes), "the files of --results: GNU parallel's, and ours")
			}
			if tc.log {
				require.Equal(t, joblogColumns(t, theirLog), joblogColumns(t, ourLog), "joblog: GNU parallel's, and ours (all but Starttime and JobRuntime)")
			}
		})
	}
}

func sortedLines(s string) []string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(l)
	return l
}

// joblogColumns reads a joblog, sorted by Seq, without its Starttime and
// JobRuntime.
func joblogColumns(t *testing.T, path string) []string {
	t.Helper()
	var rows []string
	for i, l := range strings.Split(strings.TrimSuffix(readFile(t, path), "\n"), "\n") {
		f := strings.Split(l, "\t")
		require.Len(t, f, 9, "joblog %s line %d: %q", path, i+1, l)
		if i > 0 {
			f[2], f[3] = "-", "-"
		}
		rows = append(rows, strings.Join(f, "\t"))
	}
	sort.Strings(rows[1:])
	return rows
}

// resultsIn puts --results's RESULTS in dir.
func resultsIn(args []string, dir string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		out[i] = strings.ReplaceAll(a, "RESULTS", dir)
	}
	return out
}

// tree is each file under dir, with its contents, by its path in dir.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	parent := filepath.Dir(dir)
	require.NoError(t, filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(p, dir) {
			return err
		}
		files[strings.TrimPrefix(p, dir)] = readFile(t, p)
		return nil
	}), "walking %s", parent)
	return files
}

// filesOutput reads the files --files names, each after its tag, and
// removes them.
func filesOutput(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		tag, name, _ := strings.Cut(l, "\t")
		got = append(got, tag+"\t"+readFile(t, name))
		require.NoError(t, os.Remove(name))
	}
	return got
}
