// Package osproc holds the system calls that a child's loop makes on
// itself and on the process group it leads: they are not the process
// manager's business, and no user's.
package osproc
