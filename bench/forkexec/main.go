// Command forkexec is the floor of bench/commands.sh: a bare loop that
// starts a program n times, j at a time, with syscall.ForkExec and reaps
// each with wait4, keeping nothing of its output.
//
//	forkexec -j 2 -n 2000 /bin/true
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

func main() {
	j := flag.Int("j", 2, "programs at a time")
	n := flag.Int("n", 2000, "programs in all")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: forkexec [-j N] [-n N] program [args]")
		os.Exit(2)
	}
	argv := flag.Args()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
	var left atomic.Int64
	left.Store(int64(*n))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range *j {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				pid, err := syscall.ForkExec(argv[0], argv, attr)
				if err != nil {
					failed.Add(1)
					continue
				}
				var ws syscall.WaitStatus
				if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "forkexec: %d of %d failed\n", f, *n)
		os.Exit(1)
	}
}
