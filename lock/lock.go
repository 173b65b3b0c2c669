package lock

import (
	"fmt"
	"strings"

	"github.com/procrastinate-go/procrastinate/internal/lockdir"
	"github.com/procrastinate-go/procrastinate/internal/sentinel"
)

// ErrHeld is the error of a TryLock (dispatcher.Dispatcher.TryLock,
// task.TryLock) that found the lock held by another holder, in this
// process or another.
var ErrHeld = sentinel.New("lock.ErrHeld", "lock: held by another holder")

func init() {
	lockdir.ErrHeld = ErrHeld
	lockdir.NewNameError = func(name, reason string) error { return &NameError{Name: name, Reason: reason} }
	lockdir.Bind = func(l any, h *lockdir.Held) { l.(*Lock).h = h }
}

// Lock is a held lock. It holds an open file until [Lock.Unlock] releases
// it, or the process ends however it ends; a Lock that is dropped without
// Unlock stays held until then (the garbage collector does not release
// it). Its methods are safe for concurrent use, and Unlock may be called
// from any goroutine, not only the one that took the lock. The zero Lock,
// and a nil *Lock, hold nothing.
type Lock struct {
	h *lockdir.Held
}

// Name returns the lock's name ("" for the zero Lock and a nil *Lock).
func (l *Lock) Name() string {
	if l == nil {
		return ""
	}
	return l.h.Name()
}

// Unlock releases the lock. Calling it again, from any goroutine, or on
// the zero Lock or a nil *Lock does nothing and returns nil; when calls
// race, exactly one of them releases the lock. Once Unlock has returned,
// the lock is free for others to take. It returns an error only when the
// system refuses to release the lock's file, which is then closed all the
// same.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	return l.h.Unlock()
}

// NameError is the error for a lock name that is not a plain file name.
// Callers pick it out with errors.As.
type NameError struct {
	Name   string // the name as given
	Reason string // what is wrong with it, such as "contains '/'"
}

// maxQuoted is about how much of a name NameError.Error quotes.
const maxQuoted = 64

// Error returns a one-line description, such as
//
//	lock: bad lock name "a/b": contains '/'
//
// A name longer than about 64 bytes is cut short, and ends in "...".
func (e *NameError) Error() string {
	name := e.Name
	if len(name) > maxQuoted {
		name = strings.ToValidUTF8(name[:maxQuoted], "") + "..."
	}
	return fmt.Sprintf("lock: bad lock name %q: %s", name, e.Reason)
}
