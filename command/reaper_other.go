//go:build unix && (!linux || procrastinate_portable) && !(freebsd && (amd64 || arm64 || riscv64))

package command

// adoptsLeftovers: without a subreaper (macOS, and Linux's portable
// build), a process that left the command's group (setsid) is init's
// once its parent exits, and outlives the call.
const adoptsLeftovers = false

// acquireReaper: there is no subreaper here.
func acquireReaper() {}

// endSubtree: there is no subtree to look in here; the command's group
// was killed.
func endSubtree(pid int) int { return 0 }
