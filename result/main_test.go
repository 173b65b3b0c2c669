package result_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
)

// TestMain is also the child's entry: the examples run their tasks in
// children, fresh starts of this test binary.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}
