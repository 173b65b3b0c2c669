package task

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// Serve runs, in a child process, the invocations its parent sends: for
// each it finds the defined task by name, decodes the argument, calls the
// function and sends back the result or the failure. It returns nil when
// the parent has no more work for the child (the last invocation was
// served, or the pipe ended while the child was idle) and an error when the
// invocation stream is broken. procrastinate.Main passes it to
// procman.Serve; programs do not call it themselves.
//
// Inside the child, the task's context ends at the invocation's deadline,
// when the parent asks the child to stop, and on SIGTERM (the first step
// of the parent's termination sequence), so that a task that watches its
// context returns cleanly. A SIGTERM while the child is idle ends it at
// once.
func Serve(c *procman.Child) error {
	root, cancel := context.WithCancel(context.Background())
	defer cancel()
	var busy atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-c.Stopped():
		case <-root.Done():
			return
		}
		cancel()
		if !busy.Load() {
			os.Exit(0)
		}
	}()
	for {
		p, err := c.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		busy.Store(true)
		inv, err := wire.DecodeInvocation(p)
		if err != nil {
			return fmt.Errorf("the parent sent an invocation that does not decode (are parent and child the same build?): %w", err)
		}
		kind, out := runOne(root, inv)
		if err := c.Send(kind, out); err != nil {
			return err
		}
		busy.Store(false)
		if inv.Last || root.Err() != nil {
			return nil
		}
	}
}

// runOne runs one invocation and returns the frame to answer with.
func runOne(root context.Context, inv *wire.Invocation) (wire.Kind, []byte) {
	e := lookup(inv.Task)
	if e == nil {
		return failure(fmt.Sprintf("task: no task named %q is defined in this program (Define it at package level, so that it is defined in every copy of the program)", inv.Task), "", false)
	}
	ctx := root
	if !inv.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(root, inv.Deadline)
		defer cancel()
	}
	out, err, panicked, stack := protect(ctx, e, inv.Arg)
	if panicked {
		return failure(err.Error(), stack, true)
	}
	if err != nil {
		return failure(err.Error(), "", false)
	}
	return wire.KindAnswer, out
}

func protect(ctx context.Context, e *entry, arg []byte) (out []byte, err error, panicked bool, stack string) {
	defer func() {
		if v := recover(); v != nil {
			err, panicked, stack = fmt.Errorf("%v", v), true, string(debug.Stack())
		}
	}()
	out, err = e.run(ctx, arg)
	return out, err, false, ""
}

func failure(msg, stack string, panicked bool) (wire.Kind, []byte) {
	return wire.KindTaskFailed, wire.AppendFailure(nil, &wire.Failure{Message: msg, Stack: stack, Panicked: panicked})
}
