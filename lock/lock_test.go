package lock_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/lock"
)

// TestMain is also the child's entry: the examples run tasks in children,
// fresh starts of this test binary.
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

func TestTheZeroLockAndANilLockHoldNothing(t *testing.T) {
	leakcheck.Check(t)
	var zero lock.Lock
	require.NoError(t, zero.Unlock(), "Unlock of the zero Lock")
	require.NoError(t, zero.Unlock(), "a second Unlock of the zero Lock")
	require.Equal(t, "", zero.Name())
	var nilLock *lock.Lock
	require.NoError(t, nilLock.Unlock(), "Unlock of a nil *Lock")
	require.Equal(t, "", nilLock.Name())
}

func TestNameErrorMessageCutsALongName(t *testing.T) {
	var err error = &lock.NameError{Name: "a/b", Reason: "contains '/'"}
	require.EqualError(t, err, `lock: bad lock name "a/b": contains '/'`)

	long := strings.Repeat("x", 300)
	err = &lock.NameError{Name: long, Reason: "300 bytes long; at most 255 allowed"}
	require.EqualError(t, err, `lock: bad lock name "`+strings.Repeat("x", 64)+`...": 300 bytes long; at most 255 allowed`)
	var ne *lock.NameError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, long, ne.Name, "NameError.Name is cut")

	// A cut in the middle of a rune leaves no broken rune behind.
	err = &lock.NameError{Name: strings.Repeat("é", 200), Reason: "too long"}
	require.Contains(t, err.Error(), `"`+strings.Repeat("é", 32)+`..."`)
}

func TestErrHeldSaysWhatItIs(t *testing.T) {
	require.EqualError(t, lock.ErrHeld, "lock: held by another holder")
	require.True(t, errors.Is(lock.ErrHeld, lock.ErrHeld))
}
