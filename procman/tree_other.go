//go:build !linux || procrastinate_portable

package procman

// killDescendants: off Linux no child runs, and no /proc tells a
// process's children.
func killDescendants(root string) int { return 0 }

// hasChildren: off Linux it does not look.
func hasChildren() bool { return false }

// becomeSubreaper: off Linux there is no subreaper.
func becomeSubreaper() {}
