// Command procrastinate runs a command for each of its inputs, several at
// a time, with GNU parallel's flags: each command is started by a reused
// child process in a process group of its own, and nothing a command
// started outlives its job, its timeout, or the runner.
//
//	procrastinate -j4 -k gzip -9 {} ::: *.log
//	find . -name '*.png' | procrastinate --joblog jobs.tsv convert {} {.}.jpg
//
// See docs/commands.md for the flags, and how they differ from parallel's.
package main

import (
	"os"

	"github.com/procrastinate-go/procrastinate"
)

func main() {
	procrastinate.Main() // a child: run the commands it is handed, and exit
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
