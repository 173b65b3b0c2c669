// Package tune reaches the process manager's speed mechanisms that only
// this module's dispatcher and child loop use, and no user of procman
// needs: procman sets these functions as it is initialised. Each takes
// the procman value as an any, so that this package need not import
// procman.
package tune

var (
	// Flush writes now what a *procman.Manager's Process.Send queued,
	// for an owner about to do something slow before it steps again.
	// Owner goroutine only.
	Flush func(m any)
	// Queued reports whether an invocation waits for a *procman.Child's
	// Next: read ahead, or in the pipe. It never waits. For the goroutine
	// that calls Next.
	Queued func(c any) bool
	// Withdraw asks the child of a *procman.Process not to begin
	// invocation n, its number among those sent to it, or to stop it if
	// it has begun: a stop frame that names it, on the control pipe. It
	// returns procman.ErrInputClosed once the pipes are closed. Owner
	// goroutine only.
	Withdraw func(p any, n uint64) error
	// Withdrawals returns a *procman.Child's channel, which receives
	// when the parent has withdrawn invocations, and the function that
	// takes their numbers, each once. Both are safe for concurrent use.
	Withdrawals func(c any) (ready <-chan struct{}, take func() []uint64)
)
