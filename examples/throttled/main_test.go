package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/testio"
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
	testio.Quiet(func() { peak, err = run(12, 5, 100*time.Millisecond) })
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
