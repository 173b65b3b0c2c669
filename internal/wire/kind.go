// Package wire is the task protocol that the dispatcher and the child's
// loop in package task speak over the process manager's frames: the
// payloads (an [Invocation], a [Failure]) and the kinds of reply and note.
package wire

import (
	"strconv"

	"github.com/procrastinate-go/procrastinate/procman"
)

// The kinds of reply a child sends: each ends the invocation in flight.
const (
	KindAnswer     procman.Kind = 1 // the task's encoded result
	KindTaskFailed procman.Kind = 2 // an encoded [Failure]
)

// The kinds of note a child sends about the invocation that runs.
const (
	KindHeartbeat procman.Kind = 3 // the task is alive; empty payload
	KindProgress  procman.Kind = 4 // free-form progress from the task
	KindRetiring  procman.Kind = 5 // the child takes no more work after this answer; empty payload
)

// KindName names a reply's or a note's kind, for logs.
func KindName(k procman.Kind) string {
	switch k {
	case KindAnswer:
		return "answer"
	case KindTaskFailed:
		return "task-failed"
	case KindHeartbeat:
		return "heartbeat"
	case KindProgress:
		return "progress"
	case KindRetiring:
		return "retiring"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}
