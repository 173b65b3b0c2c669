package task

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/procrastinate-go/procrastinate/internal/lockdir"
	"github.com/procrastinate-go/procrastinate/internal/sentinel"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/lock"
	"github.com/procrastinate-go/procrastinate/procman"
)

// What a task's context carries in a child: its invocation (see
// invocationOf), and the lock directory of the dispatcher that started it.
type ctxKey int

const (
	childKey ctxKey = iota
	lockDirKey
)

// invocationOf is a task's invocation in a child: its end of the pipes
// and the invocation's number, so that a heartbeat from a goroutine that
// outlives its task is dropped instead of counting for the next task.
type invocationOf struct {
	c   *procman.Child
	seq uint64
}

// ErrNotInChild is returned by calls that only make sense inside a task
// running in a child process, when their context is not a task's.
var ErrNotInChild = sentinel.New("task.ErrNotInChild", "task: not called with the context of a task running in a child process")

// errNoLocks is returned by Lock, TryLock and Synchronize in a child whose
// parent gave it no lock directory (one that runs Serve under a process
// manager of its own, not a dispatcher).
var errNoLocks = errors.New("task: the task's parent gave it no lock directory; locks are shared through a dispatcher")

// Heartbeat tells the parent that the task is alive. A call whose
// activity timeout is set ([WithActivityTimeout]; for the workers of
// server mode, through strategy.CallOptions) is killed and reported when no
// heartbeat comes for longer than that. It is cheap (one small write) and safe from any
// goroutine of the task. With a context that is not a task's it returns
// ErrNotInChild.
func Heartbeat(ctx context.Context) error {
	inv, ok := ctx.Value(childKey).(invocationOf)
	if !ok {
		return ErrNotInChild
	}
	return inv.c.Note(inv.seq, wire.KindHeartbeat, nil)
}

// Lock takes the named lock shared by the parent and all the children of
// the task's dispatcher (dispatcher.Dispatcher.Lock takes the same ones),
// waiting until it is free or ctx ends. Release it with Unlock; the
// child's exit releases it too. Names are plain file names: another is
// refused with a *lock.NameError. With a context that is not a task's it
// returns ErrNotInChild.
func Lock(ctx context.Context, name string) (*lock.Lock, error) {
	d, err := lockDir(ctx)
	if err != nil {
		return nil, err
	}
	return lockdir.Public[lock.Lock](d.Lock(ctx, name))
}

// TryLock takes the named lock if it is free now; if another holder has
// it, it returns lock.ErrHeld. Its other errors are those of [Lock].
func TryLock(ctx context.Context, name string) (*lock.Lock, error) {
	d, err := lockDir(ctx)
	if err != nil {
		return nil, err
	}
	return lockdir.Public[lock.Lock](d.TryLock(name))
}

// Synchronize runs f while holding the named lock (the gem's
// Runtime#lock): it takes the lock as [Lock] does, runs f, and releases
// the lock when f returns or panics (the panic goes on). It returns the
// error of taking the lock, or else f's error, or else the error of
// releasing it.
func Synchronize(ctx context.Context, name string, f func() error) error {
	d, err := lockDir(ctx)
	if err != nil {
		return err
	}
	return d.Do(ctx, name, f)
}

// lockDirs caches opened lock directories by path: a reused child serves
// many tasks of one dispatcher.
var lockDirs sync.Map // string -> *lockdir.Dir

func lockDir(ctx context.Context) (*lockdir.Dir, error) {
	path, _ := ctx.Value(lockDirKey).(string)
	if path == "" {
		if ctx.Value(childKey) == nil {
			return nil, ErrNotInChild
		}
		return nil, errNoLocks
	}
	if d, ok := lockDirs.Load(path); ok {
		return d.(*lockdir.Dir), nil
	}
	d, err := lockdir.At(path)
	if err != nil {
		return nil, fmt.Errorf("task: the dispatcher's lock directory: %w", err)
	}
	lockDirs.Store(path, d)
	return d, nil
}

// DefineWorker registers a worker for server mode (strategy.SpawnN): a
// function that runs until its context ends or it returns. Its context
// ends when the dispatcher shuts down (a stop frame or the termination
// signal reaches the child), so a worker that watches it returns
// cleanly. It is a task with an empty result, defined as [Define] defines
// one, and may also be scheduled like one.
func DefineWorker[A any](name string, fn func(ctx context.Context, arg A) error, opts ...Option) *Def[A, struct{}] {
	if fn == nil {
		panic(fmt.Sprintf("task: DefineWorker(%q) with a nil function", name))
	}
	return defineAt(name, func(ctx context.Context, arg A) (struct{}, error) {
		return struct{}{}, fn(ctx, arg)
	}, opts, 2)
}
