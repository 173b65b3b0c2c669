package main

import (
	"context"
	"time"

	"github.com/procrastinate-go/procrastinate/command"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// This file holds the runner's whole use of the library's core API.

// pool runs commands in reused children, n at a time.
type pool struct {
	d *dispatcher.Dispatcher
}

// startPool starts a pool of n reused children. Each child forks and
// execs the commands it is handed, one at a time. A command is handed
// only to an idle child (no pipelining): a long command must not hold up
// one queued behind it while another child is idle.
func startPool(n int) (*pool, error) {
	s := strategy.Throttled(n, strategy.Reuse(strategy.Unlimited))
	d, err := dispatcher.Start(s, dispatcher.WithStderrTail(0), dispatcher.WithGracePeriod(5*time.Second))
	if err != nil {
		return nil, err
	}
	return &pool{d: d}, nil
}

// future is a command's pending answer.
type future = *result.Result[command.Result]

func (p *pool) submit(c command.Cmd) future { return command.Schedule(p.d, c) }

// kill ends every running command and its children.
func (p *pool) kill() { p.d.Close() }

// stop waits for the children to end.
func (p *pool) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.d.Shutdown(ctx)
}
