package procman

import (
	"encoding/binary"
	"io"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

// Process is one child of a Manager. Its methods belong to the manager's
// goroutine.
type Process struct {
	sysProcess
	m       *Manager
	id      uint32
	name    string
	h       Handler
	pid     int
	msgfd   int        // read end of the message pipe; -1 once at EOF
	errfd   int        // read end of the stderr pipe, when captured; else -1
	invfd   int        // write end of the invocation pipe; -1 once closed
	ctlfd   int        // write end of the control pipe, closed with invfd
	filefd  int        // the manager's end of the file socket (see frameFile), closed with msgfd; -1: none
	file    *fileFrame // the file frame being read; nil: none is
	state   State
	started time.Time
	dec     frameDecoder

	out        [][]byte // frames waiting to be written to invfd
	dirty      bool     // in Manager.dirty: sent to since the last flush
	closeAfter bool     // CloseInput was called: close once the queue is out
	outOff     int      // bytes of out[0] already written
	written    int64    // bytes written to invfd in all
	readNone   bool     // invfd broke with all that was written unread (see neverRead)
	watchOut   bool     // invfd is watched for room
	invQueued  bool     // an invocation is in out (for the traced build's mark)
	sent       uint64   // invocations sent (queued); the last one's number
	answered   uint64   // invocations answered: the next answer's number is one more

	tail    []byte    // the end of what the child wrote to stderr
	tailMax int       // how much of it to keep
	errCopy io.Writer // where captured stderr goes as it comes; nil: nowhere

	hangupAt time.Time // when a child that hung up gets killed; zero: not hung up
	stallAt  time.Time // when a child that left a frame unfinished gets killed; zero: none is
	exitErr  error     // a protocol error or ErrHungUp, for Exit.Err
	exit     *Exit
}

// Pid returns the child's process id. It is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Name returns the Spec.Name the child was started with.
func (p *Process) Name() string { return p.name }

// State returns where the child is in its life.
func (p *Process) State() State { return p.state }

// Exit returns how the child ended, or nil while it runs.
func (p *Process) Exit() *Exit { return p.exit }

// Send queues an invocation for the child: the child's Next returns its
// payload, with its number. The manager numbers the invocations sent to
// one child from 1, in the order of Send (Spec.Invocation is the first);
// the child's replies answer them in that order (see Handler). The next
// Step writes what the pipe takes before it sleeps, all invocations sent
// to one child in one writev; the rest is written as the child reads.
// Send never blocks. The payload is kept until written and must not be
// changed. It returns ErrInputClosed once the pipe is closed (a write that
// finds the child gone drops what is queued; the child's exit tells the
// rest).
func (p *Process) Send(payload []byte) error {
	p.m.enter()
	defer p.m.leave()
	return p.send(payload)
}

// Stop asks the child to finish: its Child.Stopped is closed. The request
// is not queued behind invocations: it goes at once to a pipe of its own,
// which a goroutine of the child watches while its task runs, so that the
// child hears it without reading anything. It overtakes what Send still
// queues, which is written all the same: a child waits for the rest of an
// invocation that has begun to reach it, even once stopped. What a stopped
// child takes after a stop is up to its loop. Stop returns ErrInputClosed
// once the pipes to the child are closed (CloseInput, or its exit).
func (p *Process) Stop() error {
	p.m.enter()
	defer p.m.leave()
	if p.invfd < 0 || p.closeAfter {
		return ErrInputClosed
	}
	p.sendStop(false)
	return nil
}

// withdraw asks the child not to begin invocation n, or to stop it if it
// has begun (see tune.Withdraw). Like a stop, it goes at once to the
// control pipe, ahead of what Send still queues.
func (p *Process) withdraw(n uint64) error {
	p.m.enter()
	defer p.m.leave()
	if p.invfd < 0 || p.closeAfter {
		return ErrInputClosed
	}
	frame := appendWithdraw(make([]byte, 0, headerSize+1+binary.MaxVarintLen64), n)
	if _, err := writeFD(p.ctlfd, frame); err != nil && err != syscall.EAGAIN {
		p.m.log.Debug("writing a withdrawal", "pid", p.pid, "error", err)
	}
	return nil
}

func (p *Process) send(payload []byte) error {
	if p.invfd < 0 || p.closeAfter {
		return ErrInputClosed
	}
	p.out = append(p.out, appendHeader(make([]byte, 0, headerSize), frameInvocation, len(payload)))
	p.invQueued = true
	p.sent++ // the child numbers it so too, as it takes it
	if len(payload) > 0 {
		p.out = append(p.out, payload)
	}
	if !p.dirty {
		p.dirty = true
		p.m.dirty = append(p.m.dirty, p)
	}
	return nil
}

// sendStop writes a stop frame to the control pipe: a goodbye (see
// CloseInput) when goodbye is set, else a plain stop. The pipe holds
// thousands of them, and the child needs one: a full pipe drops it.
func (p *Process) sendStop(goodbye bool) {
	frame := appendStop(make([]byte, 0, headerSize+1), goodbye)
	if _, err := writeFD(p.ctlfd, frame); err != nil && err != syscall.EAGAIN {
		p.m.log.Debug("writing a stop frame", "pid", p.pid, "error", err)
	}
}

// flushNow writes now what Send queued, as far as the pipes take it,
// instead of at the start of the next Step: for a caller about to do
// something slow (start a child) before it steps again.
func (m *Manager) flushNow() {
	m.enter()
	defer m.leave()
	m.flushDirty()
}

// flushDirty writes what was sent since the last round, one writev per
// child however many frames it was sent.
func (m *Manager) flushDirty() {
	for i, p := range m.dirty {
		p.dirty = false
		p.flush()
		m.dirty[i] = nil
	}
	m.dirty = m.dirty[:0]
}

// flush writes queued frames until the pipe is full, then waits for
// EPOLLOUT.
func (p *Process) flush() {
	for len(p.out) > 0 && p.invfd >= 0 {
		iov := p.out
		if len(iov) > 64 {
			iov = iov[:64]
		}
		first := iov[0]
		iov[0] = first[p.outOff:]
		if p.invQueued {
			p.invQueued = false
			tracepoint.Mark(tracepoint.InvocationWrite)
		}
		n, err := writevFD(p.invfd, iov)
		iov[0] = first
		if err == syscall.EAGAIN {
			break
		}
		if err != nil {
			// EPIPE: the child stopped reading or exited; what it did
			// not read is lost, and its exit will say the rest.
			p.m.log.Debug("child's invocation pipe broke", "pid", p.pid, "error", err)
			p.readNone = p.neverRead()
			p.closeInput()
			return
		}
		p.written += int64(n)
		n += p.outOff
		for n > 0 && len(p.out) > 0 && n >= len(p.out[0]) {
			n -= len(p.out[0])
			p.out[0] = nil
			p.out = p.out[1:]
		}
		p.outOff = n
	}
	want := len(p.out) > 0 && p.invfd >= 0
	if want != p.watchOut {
		if want {
			_ = p.m.watch(p.invfd, p.id, roleInv)
		} else if p.invfd >= 0 {
			p.m.unwatch(p.invfd)
		}
		p.watchOut = want
	}
	if len(p.out) == 0 {
		p.out, p.outOff = nil, 0
		if p.closeAfter {
			p.closeInput()
		}
	}
}

// CloseInput says goodbye to the child: once what was sent to it is
// written, a goodbye on the control pipe (a stop frame marked as one),
// then both pipes to the child closed. A child waiting for work sees the end and exits; a child with
// work in flight takes it as its parent's death and kills its group, as
// does a child whose pipes end without a goodbye (its parent died).
// Calling it twice does nothing.
func (p *Process) CloseInput() {
	p.m.enter()
	defer p.m.leave()
	if p.invfd < 0 || p.closeAfter {
		return
	}
	p.closeAfter = true
	p.flush() // closes the pipes once the queue is out
}

// closeInput closes the pipes to the child, after a stop frame when it
// says goodbye (CloseInput), without one when the child is gone.
func (p *Process) closeInput() {
	if p.invfd < 0 {
		return
	}
	if p.closeAfter && p.state == StateRunning {
		p.sendStop(true)
	}
	if p.watchOut {
		p.m.unwatch(p.invfd)
		p.watchOut = false
	}
	closeFD(p.invfd)
	closeFD(p.ctlfd)
	p.invfd, p.ctlfd = -1, -1
	p.out, p.outOff = nil, 0
}

// Signal sends sig to the child itself, and to its process group, which
// the child leads (what its tasks started is there), so that a child that
// moved itself into another group is reached all the same. It returns
// ErrProcessDone when the signal reached no child: the child had exited
// (reaped or not; the group's members, if any are left, still get the
// signal).
//
// SIGKILL, which the child cannot act on, first goes to every descendant
// of the child's, in its group or out of it: what its tasks started and
// left, a daemon among it, is the child's while the child, a subreaper,
// lives.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.state != StateRunning {
		return ErrProcessDone
	}
	return p.signal(sig)
}
