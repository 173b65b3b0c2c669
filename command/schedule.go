package command

import (
	"context"

	"github.com/procrastinate-go/procrastinate/internal/future"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/task"
)

// This file holds the package's whole use of the task and result API.

// runTask is the task that starts a command in the child that runs its
// call.
var runTask = task.Define("github.com/procrastinate-go/procrastinate/command.run",
	func(ctx context.Context, c Cmd) (Result, error) { return run(ctx, c) })

// Schedule hands c to s and returns its future at once; opts are those of
// any call (task.WithTimeout, task.WithContext, task.WithRetries on the
// child's death, ...). The future resolves with the command's Result when
// it exited with status 0, and with an *ExitError carrying the Result
// when it exited with another status, was killed, or could not start;
// otherwise with the errors of any call (*result.CancelError when its
// timeout passed, *result.ChildDeath, ...).
func Schedule(s task.Scheduler, c Cmd, opts ...task.CallOption) *result.Result[Result] {
	inner := runTask.Schedule(s, c, opts...)
	var v Result
	core := future.New()
	outer := new(result.Result[Result])
	future.Bind(outer, core, func([]byte) (Result, error) { return v, nil })
	resolve := func() {
		var err error
		v, err = settle(c, inner)
		if err != nil {
			core.Fail(err)
			return
		}
		core.Resolve(nil) // happens before the decode that reads v
	}
	if inner.Ready() {
		resolve()
		return outer
	}
	go func() {
		<-inner.Done()
		resolve()
	}()
	return outer
}

// settle turns the task's answer into the command's.
func settle(c Cmd, r *result.Result[Result]) (Result, error) {
	v, err := r.Value()
	if err != nil {
		return Result{}, err
	}
	if !v.Success() {
		return Result{}, &ExitError{Cmd: c.String(), Result: v}
	}
	return v, nil
}
