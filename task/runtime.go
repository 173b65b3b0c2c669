package task

import (
	"context"
	"fmt"
	"sync"

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

// ErrNoLocks is returned by Lock and TryLock when the task's dispatcher
// has no lock directory.
var ErrNoLocks = sentinel.New("task.ErrNoLocks", "task: the task's dispatcher has no lock directory")

// Heartbeat tells the parent that the task is alive. A call whose
// activity timeout is set (WithActivityTimeout, or strategy.ActivityTimeout
// in server mode) is killed and reported when no heartbeat comes for
// longer than that. It is cheap (one small write) and safe from any
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
// the task's dispatcher, waiting until it is free or ctx ends. Release it
// with Unlock; the child's exit releases it too. Names are plain file
// names (see package lock).
func Lock(ctx context.Context, name string) (*lock.Lock, error) {
	d, err := lockDir(ctx)
	if err != nil {
		return nil, err
	}
	return d.Lock(ctx, name)
}

// TryLock takes the named lock if it is free now; if another holder has
// it, it returns lock.ErrHeld.
func TryLock(ctx context.Context, name string) (*lock.Lock, error) {
	d, err := lockDir(ctx)
	if err != nil {
		return nil, err
	}
	return d.TryLock(name)
}

// Synchronize runs f while holding the named lock (the gem's
// Runtime#lock): it takes the lock with ctx, runs f, and releases it even
// if f panics.
func Synchronize(ctx context.Context, name string, f func() error) error {
	d, err := lockDir(ctx)
	if err != nil {
		return err
	}
	return d.Do(ctx, name, f)
}

// lockDirs caches opened lock directories by path: a reused child serves
// many tasks of one dispatcher.
var lockDirs sync.Map // string -> *lock.Dir

func lockDir(ctx context.Context) (*lock.Dir, error) {
	path, _ := ctx.Value(lockDirKey).(string)
	if path == "" {
		if ctx.Value(childKey) == nil {
			return nil, ErrNotInChild
		}
		return nil, ErrNoLocks
	}
	if d, ok := lockDirs.Load(path); ok {
		return d.(*lock.Dir), nil
	}
	d, err := lock.At(path)
	if err != nil {
		return nil, fmt.Errorf("task: the dispatcher's lock directory: %w", err)
	}
	lockDirs.Store(path, d)
	return d, nil
}

// DefineWorker registers a worker for server mode (strategy.SpawnN): a
// function that runs until its context ends or it returns. Its context
// ends when the dispatcher shuts down (a stop frame or the termination
// signal reaches the child), so a worker that watches it returns cleanly. It is a task with
// an empty result, and may also be scheduled like one.
func DefineWorker[A any](name string, fn func(ctx context.Context, arg A) error, opts ...Option) *Def[A, struct{}] {
	if fn == nil {
		panic(fmt.Sprintf("task: DefineWorker(%q) with a nil function", name))
	}
	return defineAt(name, func(ctx context.Context, arg A) (struct{}, error) {
		return struct{}{}, fn(ctx, arg)
	}, opts, 2)
}
