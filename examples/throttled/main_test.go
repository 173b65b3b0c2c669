package main

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
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

// The limit is what the strategy guarantees; how close a run comes to it
// depends on how fast the machine starts processes, so the example
// prints only the guarantee.
func Example() {
	var peak int
	var err error
	quiet(func() { peak, err = run(12, 5, 100*time.Millisecond) })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("12 tasks done")
	if peak <= 5 {
		fmt.Println("never more than 5 at once")
	} else {
		fmt.Println(peak, "at once; the limit is 5")
	}
	// Output:
	// 12 tasks done
	// never more than 5 at once
}

// quiet runs f with file descriptor 1 on /dev/null, so that the
// children, which inherit it, print nowhere.
func quiet(f func()) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	defer null.Close()
	saved, err := syscall.Dup(1)
	if err != nil {
		panic(err)
	}
	defer func() {
		_ = syscall.Dup3(saved, 1, 0)
		syscall.Close(saved)
	}()
	if err := syscall.Dup3(int(null.Fd()), 1, 0); err != nil {
		panic(err)
	}
	f()
}
