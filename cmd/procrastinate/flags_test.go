package main

import (
	"path/filepath"
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
