//go:build !linux

package lockdir

// ownerTag returns "": off Linux, a directory's name does not say which
// process named it.
func ownerTag() string { return "" }

// ownerGone reports false: off Linux, RemoveStale cannot tell whether a
// directory's process runs, and removes nothing.
func ownerGone(tag string) bool { return false }
