package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
)

// TestMain calls procrastinate.Main first, as main does: the children of
// these tests are re-executions of the test binary.
func TestMain(m *testing.M) {
	procrastinate.Main()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

// Under the lock no deposit is lost, and each task read the balance the
// one before it wrote: they took turns.
func TestDepositsTakeTurns(t *testing.T) {
	leakcheck.Check(t)
	var balance, midway int
	var err error
	testio.Quiet(func() { balance, midway, err = run(8, 4, 5*time.Millisecond, true) })
	require.NoError(t, err)
	require.Equal(t, 8, balance, "deposits were lost")
	require.GreaterOrEqual(t, midway, 1, "the parent read the balance before a deposit was done")
	require.LessOrEqual(t, midway, 8)
}

func Example() {
	var balance int
	var err error
	testio.Quiet(func() { balance, _, err = run(6, 3, time.Millisecond, true) })
	fmt.Println(balance, err)
	// Output:
	// 6 <nil>
}
