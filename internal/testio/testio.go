// Package testio points a test process's fd 1 elsewhere for a while, so
// that the output of children, which inherit fd 1, can be caught or
// dropped; it reads what tests check in /proc (one parser of
// /proc/<pid>/stat for all of them), and waits for a process to exit. It
// is for tests and examples' tests only.
package testio

import "os"

// Quiet runs f with fd 1 on /dev/null, so that the children, which
// inherit it, print nowhere. It panics if fd 1 cannot be moved: a test
// setup that cannot work.
func Quiet(f func()) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	defer null.Close()
	if err := WithStdout(null, f); err != nil {
		panic(err)
	}
}
