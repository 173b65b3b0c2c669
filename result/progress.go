package result

import "time"

// Progress is how far a running call is, as its task last reported with
// task.Progress.
type Progress struct {
	Done, Total int64 // Total 0: not known
	// Attempt is the try that reported it: 1 for the first, 2 for the
	// first retry, and so on. A retry starts over: until it reports, the
	// previous try's last report stands.
	Attempt int
	Sent    time.Time // when the task reported it, by its machine's clock
}

// Usage is what a call cost its child: the CPU time of the child and of
// the processes its task started and waited for, and the peak resident
// set. For a child started for the call alone, it covers the child's
// whole life, its Go runtime's start too; for a call in a reused child,
// the call's own share.
type Usage struct {
	UserCPU, SystemCPU time.Duration
	MaxRSS             int64 // bytes
}
