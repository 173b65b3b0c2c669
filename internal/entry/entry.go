// Package entry holds the function a child process serves its
// invocations with. Package task sets it in its init, and
// procrastinate.Main hands it to procman.Serve, so that the loop is not
// part of task's public API.
package entry

import "github.com/procrastinate-go/procrastinate/procman"

// Serve runs, in a child process, the invocations its parent sends, until
// the parent has no more work for it. Package task sets it.
var Serve func(c *procman.Child) error
