// Package leakcheck verifies that a test left no child process, zombie or
// file descriptor of its own behind.
//
// # Use
//
// Call [Check] first thing in a test that starts processes or opens fds:
//
//	func TestSomething(t *testing.T) {
//		leakcheck.Check(t)
//		m := procman.New()
//		...
//		defer m.Teardown()
//	}
//
// Check takes a [Snapshot] at once and verifies it when the test ends (in a
// t.Cleanup, which runs after the test's defers and after cleanups
// registered later). A test that wants the check at a point of its own
// takes a snapshot with [Take] and calls [Snapshot.Verify] or
// [Snapshot.Leaks].
//
// # What is a leak
//
// A child of this process (alive, or a zombie nobody reaped) that was not
// there at the snapshot, and an fd that was not open at the snapshot, or
// that now refers to something else. Reaping and closing are often
// asynchronous (a kill is delivered, a goroutine closes a pipe), so the
// check polls for a few seconds before it reports a leak. Processes and fds
// that existed at the snapshot are not the test's, and are never reported.
// Goroutine leaks are goleak's business (goleak.VerifyNone,
// goleak.VerifyTestMain).
//
// The check sees the whole process: tests that run in parallel (t.Parallel)
// and start processes or open fds would see each other's as leaks, so such
// tests must not use it. It needs Linux's /proc; elsewhere it checks
// nothing.
//
// # The race detector
//
// Under -race every Go process sleeps one second at exit unless GORACE
// holds atexit_sleep_ms=0, which makes any test that starts Go children
// (re-executions of the test binary) slow. TestMain must set it before it
// starts any, and the children inherit it:
//
//	os.Setenv("GORACE", "atexit_sleep_ms=0")
package leakcheck
