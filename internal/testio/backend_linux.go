//go:build linux && !procrastinate_portable

package testio

import "testing"

// PortableBackend reports whether procman runs on its portable backend
// (any system but Linux, and Linux built with the procrastinate_portable
// tag), where a few of Linux's guarantees do not hold.
const PortableBackend = false

// NeedsLinuxBackend skips t where procman runs on its portable backend,
// saying which kernel feature the test needs that the backend does not
// use (feature), and so what does not hold there.
func NeedsLinuxBackend(t testing.TB, feature string) {}
