//go:build unix

package bar

import (
	"os"

	"golang.org/x/sys/unix"
)

// terminalWidth reports whether f is open on a terminal, and its width in
// columns (0 when the terminal does not say).
func terminalWidth(f *os.File) (int, bool) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, false
	}
	return int(ws.Col), true
}
