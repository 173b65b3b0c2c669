package main

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// silentEnv makes a child exit at once, answering nothing.
const silentEnv = "GOREEXEC_TEST_SILENT=1"

// TestMain is also the child: the loop starts this test binary again.
func TestMain(m *testing.M) {
	if isChild() {
		answer()
	}
	if os.Getenv("GOREEXEC_TEST_SILENT") == "1" {
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestOnceReadsTheAnswerAndReaps(t *testing.T) {
	leakcheck.Check(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	attr := syscall.ProcAttr{Env: append(os.Environ(), childEnv)}
	for range 3 {
		require.NoError(t, once(exe, attr))
	}
}

// A child that does not answer is an error that says so.
func TestOnceReportsAChildThatDidNotAnswer(t *testing.T) {
	leakcheck.Check(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	err = once(exe, syscall.ProcAttr{Env: append(os.Environ(), silentEnv)})
	var ce *childError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 0, ce.got, "bytes answered")
}
