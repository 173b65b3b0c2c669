package bar_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
)

// TestMain calls procrastinate.Main first: Follow's tests and examples
// run tasks in children, which are this binary started again.
func TestMain(m *testing.M) {
	procrastinate.Main()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}
