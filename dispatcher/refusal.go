package dispatcher

import (
	"bytes"
	"errors"
	"syscall"
	"time"
)

// What the dispatcher does when the system refuses a child for a reason
// that passes (see transient): it keeps the task queued and starts no
// child for a pause that doubles from minPause to maxPause; it keeps fewer
// children alive for a while (maxChildren), so that those it starts have
// room for their threads and the parent for its own; and it fails the
// task only when its start was still refused WithStartRetry after the
// first refusal.

// The pauses after a refused start: the first, and the longest.
const (
	minPause = 10 * time.Millisecond
	maxPause = time.Second
)

// capHold is how long the dispatcher keeps fewer children after the last
// refusal. A limit that stays (a pids cgroup) refuses again after it, and
// the number comes down again; one that has passed (fds freed) no longer
// holds the dispatcher back.
const capHold = 10 * time.Second

// errStartPaused tells the strategy to stop spawning for this step: the
// system refused a child a moment ago, and the dispatcher will ask again
// when the pause is over.
var errStartPaused = errors.New("dispatcher: the system refused a child; starts pause for a moment")

// errAtCap tells the strategy to stop spawning for this step: since the
// system refused a child, the dispatcher keeps fewer children alive, and
// as many are alive as it keeps.
var errAtCap = errors.New("dispatcher: the system refused a child; no more are started until one ends")

// transient reports whether a start failed for a reason that passes: at
// that moment the system had no process or thread (EAGAIN: a full pids
// cgroup, RLIMIT_NPROC), no fd (EMFILE, ENFILE) or no memory (ENOMEM) to
// spare. Other reasons (a missing executable or working directory) would
// fail the next start too.
func transient(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EAGAIN, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM:
		return true
	}
	return false
}

// threadRefused reports whether a child's stderr says that its Go runtime
// died because the system gave it no thread (EAGAIN): the runtime's own
// message, or cgo's (which -race uses).
func threadRefused(stderr []byte) bool {
	return (bytes.Contains(stderr, []byte("failed to create new OS thread")) && bytes.Contains(stderr, []byte("errno=11)"))) ||
		bytes.Contains(stderr, []byte("pthread_create failed: Resource temporarily unavailable"))
}

// refused handles a child that the system refused for a reason that
// passes, for job j (nil: a spare). It lowers the number of children kept
// alive for capHold and, unless j's start retry is over, pauses the
// starts. It reports whether j stays queued, to be tried again after the
// pause; a worker's job never does (its strategy decides what follows).
func (d *Dispatcher) refused(j *job, worker bool) bool {
	now := time.Now()
	// The system is full with the children alive now: keep a quarter
	// fewer, and grow back one at a time (see started).
	alive := d.pm.ProcessCount()
	d.maxChildren = max(1, alive-alive/4)
	d.capStarts = 0
	d.cappedAt = now
	end := time.Time{}
	if j != nil && !worker {
		if j.refusedAt.IsZero() {
			j.refusedAt = now
		}
		end = j.refusedAt.Add(d.startRetry)
		if !d.refusingSince.IsZero() || !now.Before(end) {
			// Refused for the whole retry: this task fails, and so does
			// every other refused at once, until a child runs.
			if d.refusingSince.IsZero() {
				d.refusingSince = j.refusedAt
			}
			return false
		}
	}
	d.pause = min(max(2*d.pause, minPause), maxPause)
	wait := d.pause
	if !end.IsZero() && end.Sub(now) < wait {
		wait = end.Sub(now) // the last try comes as the retry ends
	}
	d.pausedUntil = now.Add(wait)
	poolView{d}.After(wait)
	return j != nil && !worker
}

// started counts a child started while fewer children are kept (see
// refused): their number grows by one for each round of starts that the
// system allowed, until capHold after the last refusal.
func (d *Dispatcher) started() {
	if d.maxChildren == 0 {
		return
	}
	d.capStarts++
	if d.capStarts >= d.maxChildren {
		d.maxChildren++
		d.capStarts = 0
	}
}

// childRan records that a child's Go runtime ran (it sent a frame, or read
// its task): the system lets children run again, so the next refusal
// starts from the shortest pause and a task's start retry counts again.
func (d *Dispatcher) childRan() {
	d.refusingSince = time.Time{}
	d.pause = 0
}

// mayStart returns errStartPaused or errAtCap when no child may start now
// because the system refused one (see refused), or nil. When paused, it
// asks for a Step at the pause's end.
func (v poolView) mayStart() error {
	d := v.d
	if !d.pausedUntil.IsZero() {
		if wait := time.Until(d.pausedUntil); wait > 0 {
			v.After(wait)
			return errStartPaused
		}
		d.pausedUntil = time.Time{}
	}
	if d.maxChildren > 0 && d.pm.ProcessCount() >= d.maxChildren {
		if time.Since(d.cappedAt) < capHold {
			return errAtCap
		}
		d.maxChildren = 0
	}
	return nil
}
