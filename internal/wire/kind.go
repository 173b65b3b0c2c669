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
	KindSkipped    procman.Kind = 8 // the parent withdrew the invocation before it began; empty payload
)

// The kinds of note a child sends about the invocation that runs.
const (
	KindHeartbeat procman.Kind = 3 // the task is alive; empty payload
	KindProgress  procman.Kind = 4 // an encoded [Progress]: how far the task is
	KindRetiring  procman.Kind = 5 // the child takes no more work after this answer; empty payload
	KindUsage     procman.Kind = 6 // an encoded [Usage]: what the task cost, just before its answer
	KindLog       procman.Kind = 7 // an encoded [LogRecord]: a record the task logged
	// KindWithdrawn says that the child will not begin a later
	// invocation that the parent withdrew: its number, a uvarint.
	KindWithdrawn procman.Kind = 9
	// KindStopped says that the parent withdrew the invocation that
	// runs, and the child stopped it: the child takes no more work after
	// this answer. Empty payload.
	KindStopped procman.Kind = 10
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
	case KindUsage:
		return "usage"
	case KindLog:
		return "log"
	case KindSkipped:
		return "skipped"
	case KindWithdrawn:
		return "withdrawn"
	case KindStopped:
		return "stopped"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}
