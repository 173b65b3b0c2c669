//go:build unix && !linux && !(freebsd && (amd64 || arm64 || riscv64))

package command

// exitedWait cannot wait for an exit without reaping here (macOS has no
// waitid or wait6 that Go may call): peeked is false, and runOnce reaps
// the command first, then kills its group.
func exitedWait(pid int) (peeked bool, err error) { return false, nil }
