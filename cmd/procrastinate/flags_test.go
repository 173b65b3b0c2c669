package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReplaceStringI(t *testing.T) {
	out, errs, code := runIn(t, "", "--dry-run", "-j1", "-k", "-I", "XX", "echo", "XX", "{}", "{.}", "{#}", "{1}", ":::", "a.b", "c d")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "echo a.b {} a 1 {1}\necho 'c d' {} 'c d' 2 {1}\n", out,
		"--dry-run with -I XX: XX is the input, {} and {1} are text, {.} and {#} work")

	out, errs, code = runIn(t, "", "-k", "-I", "{x}", "echo", ":::", "a", "b")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "a\nb\n", out, "stdout with -I {x} unused: the input is appended")

	dir := t.TempDir()
	_, errs, code = runIn(t, "", "-I", "@@", "touch", filepath.Join(dir, "@@.x"), ":::", "a b")
	require.Equal(t, 0, code, "touch with -I @@; stderr %q", errs)
	require.FileExists(t, filepath.Join(dir, "a b.x"), "the file named by the input with a space, through -I @@")
}

func TestPlusReplacementStrings(t *testing.T) {
	out, errs, code := runIn(t, "", "--dry-run", "-j1", "-k", "--plus", "echo",
		"{..}", "{+..}", "{/..}", "{+/}", "{+.}", "{...}", "{+...}", "{/...}", "{##}", "{0#}", "{0%}", "{2..}",
		":::", "a/b.tar.gz", "x", ":::", "1", "2", "3", "4", "5")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	want := "echo a/b 1 tar.gz '' b 1 a '' gz '' a/b.tar.gz 1 '' '' b.tar.gz 1 10 01 1 1\n" +
		"echo a/b 2 tar.gz '' b 2 a '' gz '' a/b.tar.gz 2 '' '' b.tar.gz 2 10 02 1 2\n"
	require.Equal(t, want, out[:len(want)], "the first two lines of --dry-run with --plus (GNU parallel's)")
	require.Contains(t, out, "echo x 5 '' '' x 5 '' '' '' '' x 5 '' '' x 5 10 10 1 5\n", "the last line of --dry-run with --plus")

	_, errs, code = runIn(t, "", "--plus", "echo", "{:-x}", ":::", "a")
	require.Equal(t, 255, code, "exit status of a --plus string that is not built; stderr %q", errs)
	require.Contains(t, errs, "{:-x}", "stderr names the replacement string")

	out, errs, code = runIn(t, "", "--dry-run", "echo", "{..}", ":::", "a.b.c")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "echo {..} a.b.c\n", out, "{..} without --plus is text, and the input is appended")
}

func TestManyArgumentsPerLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"-X spreads the inputs over the slots", []string{"-j4", "-k", "-X", "echo", ":::", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, "1 2 3\n4 5 6\n7 8 9\n10\n"},
		{"-X with one slot", []string{"-j1", "-k", "-X", "echo", ":::", "1", "2", "3"}, "1 2 3\n"},
		{"-X repeats the word around {}", []string{"-j2", "-k", "-X", "echo", "pic{}.jpg", "x{.}y", ":::", "a.b", "c.d", "e"}, "pica.b.jpg picc.d.jpg xay xcy\npice.jpg xey\n"},
		{"-m puts every input in place of {}", []string{"-j1", "-k", "-m", "echo", "pic{}.jpg", "x{.}y", ":::", "a.b", "c.d", "e"}, "pica.b c.d e.jpg xa c ey\n"},
		{"-X with {#}", []string{"-j1", "-k", "-X", "echo", "{#}-{}", "{#}", ":::", "a", "b"}, "1-a 1-b 1\n"},
		{"-s bounds the line", []string{"-j1", "-k", "-X", "-s", "15", "echo", ":::", "aaaa", "bbbb", "cccc", "dddd"}, "aaaa bbbb\ncccc dddd\n"},
		{"the last line spreads", []string{"-j2", "-k", "-X", "-s", "20", "echo", ":::", "aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff"}, "aaaa bbbb cccc\ndddd eeee\nffff\n"},
		{"-n bounds -X", []string{"-j2", "-k", "-X", "-n", "3", "echo", ":::", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}, "1 2 3\n4 5 6\n7 8 9\n10\n11\n"},
		{"--xargs does not spread", []string{"-j3", "-k", "--xargs", "echo", ":::", "1", "2", "3", "4", "5"}, "1 2 3 4 5\n"},
		{"-m with {} twice and -s", []string{"-j2", "-k", "-m", "-s", "20", "echo", "{}", "{}", ":::", "a", "b", "c", "d", "e", "f", "g"}, "a b c a b c\nd e f d e f\ng g\n"},
		{"-X in a shell line", []string{"-j1", "-k", "-X", "echo x{}y | tr a-z A-Z", ":::", "a", "b c"}, "XAY XB CY\n"},
		{"-X, two sources", []string{"-j1", "-k", "-X", "echo", "pic{}.jpg", ":::", "a", "b", ":::", "x", "y"}, "pica.jpg picx.jpg pica.jpg picy.jpg picb.jpg picx.jpg picb.jpg picy.jpg\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runIn(t, "", tc.args...)
			require.Equal(t, 0, code, "exit status; stderr %q", errs)
			require.Equal(t, tc.want, out, "stdout of %q", tc.args)
		})
	}

	// A value with a space stays one argument without a shell.
	dir := t.TempDir()
	_, errs, code := runIn(t, "", "-X", "touch", filepath.Join(dir, "{}.x"), ":::", "a b", "c")
	require.Equal(t, 0, code, "touch with -X; stderr %q", errs)
	require.FileExists(t, filepath.Join(dir, "a b.x"), "the file named by an input with a space, through -X")
	require.FileExists(t, filepath.Join(dir, "c.x"), "the file named by the second input, through -X")
}

func TestManyArgumentsPerLineRefused(t *testing.T) {
	dir := t.TempDir()
	touch := filepath.Join(dir, "{}")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an input too long for -s", []string{"-X", "-s", "12", "touch", touch, ":::", "a", "aaaaaaaaaaaaaaaaaaaaaaaa"}, "too long"},
		{"a line too long for -s without -X", []string{"-s", "12", "touch", touch, ":::", "a", "aaaaaaaaaaaaaaaaaaaaaaaa"}, "too long"},
		{"{n} with -X", []string{"-X", "touch", filepath.Join(dir, "{1}"), ":::", "a", "b"}, "{1}"},
		{"a bad -s", []string{"-X", "-s", "x", "touch", touch, ":::", "a"}, "--max-chars"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runIn(t, "", tc.args...)
			require.Equal(t, 255, code, "exit status; stderr %q", errs)
			require.Contains(t, errs, tc.want, "stderr")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "files the jobs made; want none started")
		})
	}
}

func TestShuf(t *testing.T) {
	var args, want []string
	for i := 1; i <= 40; i++ {
		args = append(args, strconv.Itoa(i))
		want = append(want, fmt.Sprintf("%d", i))
	}
	out, errs, code := runIn(t, "", append([]string{"-j1", "-k", "--shuf", "echo", "{#}", "{}", ":::"}, args...)...)
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, len(args), "lines of --shuf: one a job")
	var seqs, vals []string
	for _, l := range lines {
		seq, val, ok := strings.Cut(l, " ")
		require.True(t, ok, "a line of seq and input: %q", l)
		seqs, vals = append(seqs, seq), append(vals, val)
	}
	require.Equal(t, want, seqs, "{#} under --shuf: the order the jobs run in")
	require.NotEqual(t, want, vals, "the inputs under --shuf: in their order (1 chance in 40! that a shuffle leaves them so)")
	sort.Slice(vals, func(i, j int) bool { a, _ := strconv.Atoi(vals[i]); b, _ := strconv.Atoi(vals[j]); return a < b })
	require.Equal(t, want, vals, "the inputs under --shuf: each once")
}

func TestTagstring(t *testing.T) {
	out, errs, code := runIn(t, "", "-j1", "-k", "--tagstring", "{}-{#}-{%}-{.}", "sh -c 'echo x; echo y'", ":::", "a.b", "c d")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "a.b-1-1-a\tx\na.b-1-1-a\ty\nc d-2-1-c d\tx\nc d-2-1-c d\ty\n", out, "stdout with --tagstring")

	out, errs, code = runIn(t, "", "-k", "--tag", "--tagstring", "T{}", "echo", ":::", "a")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "Ta\ta\n", out, "stdout with --tag and --tagstring: the tagstring wins")
}

func TestResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "res")
	out, errs, code := runIn(t, "", "-k", "--results", dir, "echo out {}; echo err {} >&2; exit {#}", ":::", "a", "b/c", "")
	require.Equal(t, 3, code, "exit status: three jobs failed; stderr %q", errs)
	require.Empty(t, out, "stdout with --results: the output goes to the files only")
	require.Empty(t, errs, "stderr with --results: the output goes to the files only")
	for _, tc := range []struct{ sub, seq, val string }{{"1/a", "1", "a"}, {`1/b\_c`, "2", "b/c"}, {"1", "3", ""}} {
		d := filepath.Join(dir, tc.sub)
		require.Equal(t, tc.seq, readFile(t, filepath.Join(d, "seq")), "%s/seq", d)
		require.Equal(t, "out "+tc.val+"\n", readFile(t, filepath.Join(d, "stdout")), "%s/stdout", d)
		require.Equal(t, "err "+tc.val+"\n", readFile(t, filepath.Join(d, "stderr")), "%s/stderr", d)
	}

	// Two sources, and an output past what is kept in memory.
	dir = filepath.Join(t.TempDir(), "res")
	_, errs, code = runIn(t, "", "--results", dir, "head -c {2} /dev/zero", ":::", "x", ":::", "3", "2000000")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Len(t, readFile(t, filepath.Join(dir, "1", "x", "2", "3", "stdout")), 3, "stdout of the small job")
	require.Len(t, readFile(t, filepath.Join(dir, "1", "x", "2", "2000000", "stdout")), 2000000, "stdout of the large job")

	// A name with a replacement string: a file, or a directory when it ends in /.
	base := t.TempDir()
	_, errs, code = runIn(t, "", "-k", "--results", filepath.Join(base, "my_{}"), "echo", ":::", "foo")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "foo\n", readFile(t, filepath.Join(base, "my_foo")), "my_foo: stdout")
	require.Equal(t, "", readFile(t, filepath.Join(base, "my_foo.err")), "my_foo.err: stderr")
	require.Equal(t, "1", readFile(t, filepath.Join(base, "my_foo.seq")), "my_foo.seq: seq")
	_, errs, code = runIn(t, "", "-k", "--results", filepath.Join(base, "d_{.}")+"/", "echo", ":::", "bar.x")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, "bar.x\n", readFile(t, filepath.Join(base, "d_bar", "stdout")), "d_bar/stdout")

	_, errs, code = runIn(t, "", "--results", filepath.Join(base, "out.csv"), "echo", ":::", "a")
	require.Equal(t, 255, code, "exit status of --results to a CSV file; stderr %q", errs)
	require.Contains(t, errs, "out.csv", "stderr names the --results it refuses")
}

func TestFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	out, errs, code := runIn(t, "", "-k", "--files", "--tag", "echo out {}; echo err >&2", ":::", "a", "b")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Empty(t, errs, "stderr with --files: parallel drops the jobs' stderr")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2, "stdout with --files: a file name a job: %q", out)
	for i, want := range []string{"a", "b"} {
		tag, name, ok := strings.Cut(lines[i], "\t")
		require.True(t, ok, "a tagged line: %q", lines[i])
		require.Equal(t, want, tag, "the tag of line %d", i+1)
		require.Equal(t, tmp, filepath.Dir(name), "the file of job %d is in TMPDIR", i+1)
		require.Equal(t, "out "+want+"\n", readFile(t, name), "the file of job %d", i+1)
	}

	dir := filepath.Join(t.TempDir(), "res")
	out, errs, code = runIn(t, "", "--results", dir, "--files", "echo", ":::", "a")
	require.Equal(t, 0, code, "exit status; stderr %q", errs)
	require.Equal(t, filepath.Join(dir, "1", "a", "stdout")+"\n", out, "stdout with --results and --files: the stdout file's name")
}
