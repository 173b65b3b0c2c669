//go:build !linux || procrastinate_portable

package procman

import "github.com/procrastinate-go/procrastinate/internal/pgroup"

// killDescendants: with no /proc to walk, the child kills the process
// groups its tasks recorded as still in use (package command records each
// command's), and reports how many it reached. What left those groups is
// not found.
func killDescendants(root string) int { return pgroup.KillAll() }

// hasChildren reports whether a task recorded a process group that is
// still in use: off Linux it does not look further.
func hasChildren() bool { return pgroup.Any() }

// becomeSubreaper: off Linux there is no subreaper.
func becomeSubreaper() {}
