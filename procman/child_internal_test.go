//go:build linux

package procman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
)

// childPipes is a Child in this process, over pipes whose other ends the
// test holds: inv and ctl to write to, msg to read from. Nothing here may
// reach the lifeline, which would kill the process group: every test ends
// the control pipe with a stop frame before it closes it.
type childPipes struct {
	c             *Child
	inv, ctl, msg *os.File
}

func newChildPipes(t *testing.T) *childPipes {
	t.Helper()
	leakcheck.Check(t)
	t.Cleanup(func() { goleak.VerifyNone(t) }) // the control pipe's watcher is gone
	ir, iw, err := os.Pipe()
	require.NoError(t, err)
	mr, mw, err := os.Pipe()
	require.NoError(t, err)
	cr, cw, err := os.Pipe()
	require.NoError(t, err)
	c, err := newChildOn(ir, mw, cr)
	require.NoError(t, err)
	p := &childPipes{c: c, inv: iw, ctl: cw, msg: mr}
	t.Cleanup(func() {
		// Answered: a goodbye with an invocation in flight is the
		// parent's death.
		for c.pending.Load() > 0 {
			require.NoError(t, c.Reply(testAnswer, nil))
		}
		p.goodbye(t)
		<-c.ctlDone
		for _, f := range []*os.File{ir, mw, cr, mr} {
			f.Close()
		}
	})
	return p
}

// send writes frames to the invocation pipe.
func (p *childPipes) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		_, err := p.inv.Write(f)
		require.NoError(t, err)
	}
}

// goodbye does what Process.CloseInput does: a goodbye on the control
// pipe, then both pipes closed. A second call does nothing.
func (p *childPipes) goodbye(t *testing.T) {
	if p.ctl == nil {
		return
	}
	_, err := p.ctl.Write(appendStop(nil, true))
	require.NoError(t, err)
	require.NoError(t, p.ctl.Close())
	require.NoError(t, p.inv.Close())
	p.ctl, p.inv = nil, nil
}

func invocation(task string) []byte {
	return appendFrame(nil, frameInvocation, []byte(task))
}

// next calls Next, and returns the invocation's payload, its task's name
// here (see invocation).
func next(ctx context.Context, c *Child) (string, error) {
	_, p, err := c.Next(ctx)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

func TestNextReadsInvocationsInOrder(t *testing.T) {
	p := newChildPipes(t)
	require.Equal(t, 0, p.c.queued())
	// Two in one write, and one that comes in two pieces.
	p.send(t, append(invocation("one"), invocation("two")...))
	require.Equal(t, 1, p.c.queued())
	third := invocation("three")
	p.send(t, third[:3])
	for _, want := range []string{"one", "two"} {
		got, err := next(context.Background(), p.c)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	done := make(chan error, 1)
	go func() {
		got, err := next(context.Background(), p.c)
		if err == nil && got != "three" {
			err = errors.New("got " + got)
		}
		done <- err
	}()
	p.send(t, third[3:])
	require.NoError(t, <-done)
	require.EqualValues(t, 3, p.c.pending.Load(), "three invocations taken, none answered")
	for range 3 {
		require.NoError(t, p.c.Reply(testAnswer, nil))
	}
	p.goodbye(t)
	_, _, err := p.c.Next(context.Background())
	require.ErrorIs(t, err, io.EOF, "the goodbye ends the stream")
	_, _, err = p.c.Next(context.Background())
	require.ErrorIs(t, err, io.EOF, "and it stays ended")
}

// A context that ends while Next waits ends the wait.
func TestNextReturnsWhenItsContextEnds(t *testing.T) {
	p := newChildPipes(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := p.c.Next(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return when its context ended")
	}
	// The wake-up left nothing behind: the next call waits, and takes
	// what comes.
	go func() {
		_, err := next(context.Background(), p.c)
		done <- err
	}()
	p.send(t, invocation("after"))
	require.NoError(t, <-done)
}

// What is in the pipe when the context has ended is still returned: a
// child told to stop answers what it was sent before the stop.
func TestNextReturnsWhatCameBeforeItsContextEnded(t *testing.T) {
	p := newChildPipes(t)
	p.send(t, invocation("a"), invocation("b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, want := range []string{"a", "b"} {
		got, err := next(ctx, p.c)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, _, err := p.c.Next(ctx)
	require.ErrorIs(t, err, context.Canceled, "then the ended context, without a wait")
}

// The deadline that wakes a wait when a context ends can come after the
// call it was for has returned (the context's AfterFunc runs on its own
// goroutine). The next call, with another context, must still wait.
func TestNextWaitsPastAnEarlierContextsDeadline(t *testing.T) {
	p := newChildPipes(t)
	require.NoError(t, p.c.in.SetReadDeadline(longAgo)) // as a late AfterFunc leaves it
	done := make(chan error, 1)
	go func() {
		got, err := next(context.Background(), p.c)
		if err == nil && got != "late" {
			err = errors.New("got " + got)
		}
		done <- err
	}()
	p.send(t, invocation("late"))
	require.NoError(t, <-done)
}

// A stop goes on its own pipe and can overtake an invocation that the
// parent is still writing: what has begun to arrive is waited for, the
// rest of it too, though the context has ended.
func TestNextWaitsForTheRestOfAnInvocation(t *testing.T) {
	p := newChildPipes(t)
	big := appendFrame(nil, frameInvocation, append([]byte("big"), make([]byte, 1<<20)...))
	p.send(t, big[:1000])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wrote := make(chan error, 1)
	go func() { // the pipe holds 64 KiB: the rest goes as the child reads
		_, err := p.inv.Write(big[1000:])
		wrote <- err
	}()
	got, err := next(ctx, p.c)
	require.NoError(t, err)
	require.Equal(t, "big", got[:3])
	require.Len(t, got, 3+1<<20)
	require.NoError(t, <-wrote)
	_, _, err = p.c.Next(ctx)
	require.ErrorIs(t, err, context.Canceled, "with nothing begun, the ended context")
}

// The lifeline's cases that kill the process group, each in a process of
// its own, in a group of its own (the test's would die too):
//   - an invocation taken once the parent's pipes have ended after its
//     goodbye (it sat in the pipe when the parent closed them with work
//     queued): work in flight at the parent's end, which the control
//     pipe's watcher did not see (it had looked before the take);
//   - the pipes' end after a plain stop, not a goodbye: a parent that
//     sent Close's stop and then died, while the child was idle.
func TestTheLifelineKillsTheGroup(t *testing.T) {
	const env = "PROCMAN_TEST_LIFELINE"
	if scenario := os.Getenv(env); scenario != "" {
		ir, iw, _ := os.Pipe()
		_, mw, _ := os.Pipe()
		cr, cw, _ := os.Pipe()
		c, err := newChildOn(ir, mw, cr)
		if err != nil {
			os.Exit(10)
		}
		switch scenario {
		case "taken-after-goodbye":
			_, _ = iw.Write(invocation("work"))
			_, _ = cw.Write(appendStop(nil, true))
			cw.Close()
			iw.Close()
			<-c.ctlDone // the watcher has seen the end, with nothing in flight
			_, _, err = c.Next(context.Background())
		case "end-after-stop":
			_, _ = cw.Write(appendStop(nil, false))
			<-c.Stopped()
			cw.Close()
			iw.Close()
			<-c.ctlDone
		}
		fmt.Printf("no lifeline (%v)\n", err)
		os.Exit(0)
	}
	for _, scenario := range []string{"taken-after-goodbye", "end-after-stop"} {
		t.Run(scenario, func(t *testing.T) {
			leakcheck.Check(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestTheLifelineKillsTheGroup$")
			cmd.Env = append(os.Environ(), env+"="+scenario)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "output: %s", out)
			ws := ee.Sys().(syscall.WaitStatus)
			require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child killed its group; got %v, output: %s", ws, out)
		})
	}
}

func TestStopFrameClosesStopped(t *testing.T) {
	p := newChildPipes(t)
	select {
	case <-p.c.Stopped():
		t.Fatal("Stopped is closed before a stop frame")
	default:
	}
	_, err := p.ctl.Write(appendStop(nil, false))
	require.NoError(t, err)
	select {
	case <-p.c.Stopped():
	case <-time.After(10 * time.Second):
		t.Fatal("a stop frame did not close Stopped")
	}
	require.False(t, p.c.told.Load(), "a plain stop is not a goodbye")
	_, err = p.ctl.Write(appendStop(nil, true))
	require.NoError(t, err)
	require.Eventually(t, p.c.told.Load, 10*time.Second, time.Millisecond, "a goodbye is one")
}

func TestBrokenStreamsAreErrors(t *testing.T) {
	t.Run("AnotherKindOnTheInvocationPipe", func(t *testing.T) {
		p := newChildPipes(t)
		p.send(t, appendFrame(nil, frameReply, []byte("x")))
		_, _, err := p.c.Next(context.Background())
		require.ErrorContains(t, err, "unexpected reply frame on the invocation pipe")
		_, _, err2 := p.c.Next(context.Background())
		require.Equal(t, err, err2, "the stream stays broken")
	})
	t.Run("NotAFrame", func(t *testing.T) {
		p := newChildPipes(t)
		p.send(t, []byte("garbage, not a frame"))
		_, _, err := p.c.Next(context.Background())
		require.ErrorContains(t, err, "reading invocations")
	})
	t.Run("AnotherKindOnTheControlPipe", func(t *testing.T) {
		p := newChildPipes(t)
		// As the task package's child loop does: a stop ends the context Next waits with.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-p.c.Stopped()
			cancel()
		}()
		require.NoError(t, p.c.Err())
		_, err := p.ctl.Write(appendFrame(nil, frameInvocation, nil))
		require.NoError(t, err)
		_, _, err = p.c.Next(ctx)
		require.ErrorContains(t, err, "unexpected invocation frame on the control pipe",
			"the child stops, and says why: not a mere stop")
		require.Equal(t, err, p.c.Err(), "Err says it too, for a loop that stopped otherwise")
	})
}
