package task

import (
	"github.com/procrastinate-go/procrastinate/internal/future"
	"github.com/procrastinate-go/procrastinate/result"
)

// ReportProgress stores p as the call's latest progress, where its
// future's Progress, ProgressChanged and OnProgress find it. It never
// waits, and drops p once the call is resolved.
func (c *Call) ReportProgress(p result.Progress) {
	c.f.SetProgress(future.Progress(p))
}

// ReportEnd stores what the call cost (nil: not known) and the last lines
// its task logged, for its future's Usage and Log. Call it before
// Resolve or Fail; after, it does nothing.
func (c *Call) ReportEnd(u *result.Usage, log []string) {
	var fu *future.Usage
	if u != nil {
		v := future.Usage(*u)
		fu = &v
	}
	c.f.SetEnd(fu, log)
}
