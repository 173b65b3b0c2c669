//go:build !procrastinate_trace || !linux

package tracepoint

// Enabled reports whether this build records marks (the procrastinate_trace
// tag, on Linux).
const Enabled = false

// Mark records that the task passed p. Without the procrastinate_trace
// tag it does nothing.
func Mark(Point) {}

// Dump writes this process's marks to $PROCRASTINATE_TRACE. Without the
// procrastinate_trace tag it does nothing.
func Dump() {}
