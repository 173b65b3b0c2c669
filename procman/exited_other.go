//go:build unix && !linux && !(freebsd && (amd64 || arm64 || riscv64))

package procman

// exitedPid cannot tell whether a child has exited without reaping it
// here (macOS has no waitid or wait6 that Go may call): ok is false, and
// the manager reaps first, then kills what is left in the child's
// process group (see Process.reap).
func exitedPid(pid int) (exited, ok bool, err error) { return false, false, nil }
