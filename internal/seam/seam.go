// Package seam lets the module's tests reach settings that are not part
// of its public API. The packages that own the settings fill it in their
// init.
package seam

import "github.com/procrastinate-go/procrastinate/procman"

// ProcmanOptions returns a dispatcher.Option that passes opts to the
// dispatcher's process manager. Package dispatcher sets it.
var ProcmanOptions func(opts ...procman.Option) any

// LockDir returns the path of the lock directory of d, a
// *dispatcher.Dispatcher. Package dispatcher sets it.
var LockDir func(d any) string
