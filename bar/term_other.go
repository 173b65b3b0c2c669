//go:build !unix

package bar

import "os"

// terminalWidth reports false: on this system the bar writes plain lines.
func terminalWidth(*os.File) (int, bool) { return 0, false }
