package gobcodec_test

import (
	"context"
	"fmt"
	"math/cmplx"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

// TestMain is also the child's entry: the example runs its task in a
// child, a fresh start of this test binary.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

// A complex number, and a map keyed by an array: gob carries both, JSON
// neither.
var roots = task.Define("example.com/calc.roots", func(ctx context.Context, xs map[[2]int]complex128) (map[[2]int]complex128, error) {
	out := make(map[[2]int]complex128, len(xs))
	for k, x := range xs {
		out[k] = cmplx.Sqrt(x)
	}
	return out, nil
}, task.WithCodec(gobcodec.Codec))

func Example() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	v, err := roots.Schedule(d, map[[2]int]complex128{{0, 1}: -4}).Value()
	fmt.Println(v[[2]int{0, 1}], err)
	// Output: (0+2i) <nil>
}
