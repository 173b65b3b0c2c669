package procman

import (
	"fmt"
	"io"
	"syscall"
	"time"
)

// read reads what the child's message pipe holds and delivers whole frames.
// Unless final, it stops after a fair share so that one chatty child
// cannot starve the others (epoll reports the rest next round), and after
// a read that did not fill the buffer: the pipe was empty then, and the
// epoll set, level-triggered, reports what comes later. That saves a
// read(2) that would only say EAGAIN, a microsecond between a child's
// answer and the caller's wake-up.
func (p *Process) read(final bool) {
	const share = 4 << 20
	got := 0
	defer func() {
		switch {
		case p.msgfd < 0:
			// Closed: the end of the stream or a protocol error.
		case p.pending() == 0:
			p.setStall(time.Time{})
		case got > 0 && p.m.opts.frameWait > 0:
			// Part of a frame, and more of it than before.
			p.setStall(time.Now().Add(p.m.opts.frameWait))
		}
	}()
	for p.msgfd >= 0 && (final || got < share) {
		buf := p.dec.Buffer()
		n, err := readFD(p.msgfd, buf)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			p.hangup(err)
			return
		}
		got += n
		drained := n < len(buf)
		p.dec.Advance(n)
		for {
			k, payload, ok, err := p.dec.Next()
			if err != nil {
				p.protocolError(err)
				return
			}
			if !ok {
				break
			}
			if k == frameNoMain {
				p.noMain()
				continue
			}
			var kind Kind
			switch {
			case p.file != nil && k != frameFilePart:
				p.protocolError(fmt.Errorf("a %v frame inside a file frame", k))
				return
			case k == frameFile:
				if p.fileFrame(payload); p.msgfd < 0 {
					return // a protocol error
				}
				continue
			case k == frameFilePart:
				var n int
				k, kind, payload, n, ok = p.filePart(payload)
				got += n
			case k.numbered():
				kind, payload, ok = p.checkNumber(k, payload)
			default:
				p.protocolError(fmt.Errorf("the child sent a %v frame, which only a parent sends", k))
				return
			}
			if !ok {
				if p.msgfd < 0 {
					return // a protocol error
				}
				continue
			}
			if k == frameReply {
				p.m.callReply(p, kind, payload)
			} else {
				p.m.callNote(p, kind, payload)
			}
		}
		if drained && !final {
			return
		}
	}
}

// checkNumber checks the invocation number of a reply or a note (class
// k) against the invocation the child runs: the oldest sent and not
// answered. It returns the caller's kind and the payload after them, and
// true, when the frame belongs to that invocation, and counts it answered
// when the frame is a reply. A frame for an invocation already answered is
// late, a second reply or a task's forgery: it is dropped, and logged. A
// frame for an invocation not yet due, or never sent, breaks the
// protocol: the child is killed. So a reply reaches the handler only for
// its own invocation, once, in the order the invocations were sent, and a
// note only while its invocation is in flight.
func (p *Process) checkNumber(k frameClass, payload []byte) (Kind, []byte, bool) {
	n, kind, rest, err := cutNumber(payload)
	due := p.answered + 1
	switch {
	case err != nil:
		p.protocolError(fmt.Errorf("%v frame: %w", k, err))
		return 0, nil, false
	case n < due:
		p.m.log.Warn("protocol error: a child sent a frame for an invocation it had answered; dropped", "pid", p.pid, "name", p.name, "frame", k.String(), "kind", kind, "invocation", n, "answered", p.answered)
		return 0, nil, false
	case n > p.sent:
		p.protocolError(fmt.Errorf("%v frame for invocation %d, which was never sent (%d were)", k, n, p.sent))
		return 0, nil, false
	case n > due:
		p.protocolError(fmt.Errorf("%v frame for invocation %d while invocation %d runs", k, n, due))
		return 0, nil, false
	}
	if k == frameReply {
		p.answered++
	}
	return kind, rest, true
}

// noMain handles a child's word that it never called Serve (see
// ErrNoMain): it will take no task, and ErrNoMain is its exit's cause.
// Its own code may still say why on its stderr and exit; it is killed if
// it runs on past the hangup wait.
func (p *Process) noMain() {
	if p.exitErr == nil {
		p.exitErr = ErrNoMain
	}
	p.m.log.Warn("child did not call procrastinate.Main (procman.Serve); it will take no task", "pid", p.pid, "name", p.name)
	p.killLater()
}

// killLater has p killed after the hangup wait if it still runs then.
func (p *Process) killLater() {
	if p.state == StateRunning && p.hangupAt.IsZero() {
		p.hangupAt = time.Now().Add(p.m.opts.hangupWait)
		p.m.hungup++
	}
}

// hangup handles the end of the message pipe (err is a read error, or nil
// at end of file).
func (p *Process) hangup(err error) {
	n := p.pending()
	p.closeMsg()
	if n > 0 {
		p.recordError(&ProtocolError{Pid: p.pid, Err: fmt.Errorf("the stream ended inside a frame, %d bytes into it: %w", n, io.ErrUnexpectedEOF)})
	} else if err != nil {
		p.recordError(&ProtocolError{Pid: p.pid, Err: fmt.Errorf("reading the message pipe: %w", err)})
	}
	// Usually the child is exiting and its pidfd fires next; if it is
	// still running after the grace period it is killed, whatever the
	// pipe's end said (a frame cut off in it is kept as the error).
	p.killLater()
}

func (p *Process) protocolError(err error) {
	p.closeMsg()
	p.recordError(&ProtocolError{Pid: p.pid, Err: err})
	if p.state == StateRunning {
		_ = p.Signal(syscall.SIGKILL)
	}
}

func (p *Process) recordError(err error) {
	if p.exitErr == nil {
		p.exitErr = err
		p.m.log.Warn("protocol error", "pid", p.pid, "name", p.name, "error", err)
	}
}

func (p *Process) closeMsg() {
	p.setStall(time.Time{}) // no more of any frame will come
	if p.msgfd >= 0 {
		p.m.unwatch(p.msgfd)
		closeFD(p.msgfd)
		p.msgfd = -1
	}
	if p.filefd >= 0 {
		// Whatever it still holds goes with it: files sent for frames
		// never read.
		closeFD(p.filefd)
		p.filefd = -1
	}
	p.dropFile()
}

// reaped finishes a child whose exit status e the backend took.
func (p *Process) reaped(e *Exit) {
	if p.exitErr == ErrHungUp && e.Signal != syscall.SIGKILL {
		// It closed its pipe because it was exiting, and the exit took
		// longer than the hangup wait to be reported (a loaded machine,
		// a large address space to tear down): the kill came too late to
		// matter, and the exit status says what happened.
		p.exitErr = nil
	}
	p.finish(e)
}

// lostExit finishes a child whose exit status someone else took: the
// program ignores SIGCHLD (the kernel then reaps children itself) or waits
// on any child. On Linux its pidfd stays readable, so without this every Step would
// find it again and WaitForAllChildren would spin for ever.
func (p *Process) lostExit() {
	if p.exitErr == nil {
		p.exitErr = fmt.Errorf("procman: child %d was reaped by someone else and its exit status is lost (is SIGCHLD ignored, or does the program wait on any child?): %w", p.pid, syscall.ECHILD)
	}
	p.m.log.Warn("a child's exit status was taken by someone else", "pid", p.pid, "name", p.name)
	p.finish(&Exit{Pid: p.pid, ExitCode: -1, Duration: time.Since(p.started)})
}

// finish records the end of a reaped child, reads what is left in its
// message pipe, closes its fds and queues it for its handler.
func (p *Process) finish(e *Exit) {
	p.state = StateStopped
	p.releaseProc()
	// Every byte the child wrote is in the pipe now: read to the end (or
	// to EAGAIN, when something it started still holds the pipe open).
	p.read(true)
	if n := p.pending(); n > 0 {
		p.recordError(&ProtocolError{Pid: p.pid, Err: fmt.Errorf("the child exited inside a frame, %d bytes into it: %w", n, io.ErrUnexpectedEOF)})
	}
	p.closeMsg()
	p.readStderr()
	p.closeStderr()
	if e.ExitCode != 0 || e.Signal != 0 {
		e.NeverRead = p.readNone || p.neverRead()
	}
	p.closeInput()
	if !p.hangupAt.IsZero() {
		p.hangupAt = time.Time{}
		p.m.hungup--
	}
	e.Err = p.exitErr
	e.Stderr = p.tail
	p.tail = nil
	p.exit = e
	p.m.finished = append(p.m.finished, p)
	if e.Signal != 0 {
		p.m.log.Debug("child exited", "pid", p.pid, "name", p.name, "signal", e.Signal.String(), "duration", e.Duration)
	} else {
		p.m.log.Debug("child exited", "pid", p.pid, "name", p.name, "code", e.ExitCode, "duration", e.Duration)
	}
}

// neverRead reports whether the child, which has exited or closed its end
// of the invocation pipe, read none of what it was sent: nothing was
// written before it went, or the pipe still holds all that was. The pipe
// keeps what its reader left while the manager's end is open.
func (p *Process) neverRead() bool {
	if p.invfd < 0 {
		return false
	}
	if p.written == 0 {
		return len(p.out) > 0
	}
	n, err := pipeLen(p.invfd)
	return err == nil && int64(n) == p.written
}
