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
