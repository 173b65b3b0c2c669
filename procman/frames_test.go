package procman_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// randomBytes returns n bytes that a dropped or reordered piece would show.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// startEchoes starts n children that each answer their index, and steps
// until all of them have exited, checking each answer.
func startEchoes(t *testing.T, m *procman.Manager, n int) {
	t.Helper()
	cs := make([]*child, n)
	for i := range cs {
		_, cs[i] = start(t, m, procman.Spec{Invocation: work("echo", strconv.Itoa(i), true)})
	}
	stepUntil(t, m, func() bool {
		for _, c := range cs {
			if c.exit == nil {
				return false
			}
		}
		return true
	})
	for i, c := range cs {
		require.True(t, c.exit.Success(), "echo child %d: %v", i, c.exit)
		require.Equal(t, [][]byte{[]byte(strconv.Itoa(i))}, c.answers(), "echo child %d", i)
	}
}

func TestChildThatNeverReadsItsInvocationDoesNotHoldUpOthers(t *testing.T) {
	big := work("echo", string(randomBytes(8<<20)), true)
	for _, tc := range []struct {
		name string
		// startStuck starts a child that leaves most of an 8 MiB
		// invocation unread in its pipe.
		startStuck func(t *testing.T, m *procman.Manager) (*procman.Process, *child)
	}{
		{"SleepsBeforeServe", func(t *testing.T, m *procman.Manager) (*procman.Process, *child) {
			// It never reads a byte: the 8 MiB is its first invocation.
			return start(t, m, procman.Spec{Env: []string{envSleepEarly + "=1"}, Invocation: big})
		}},
		{"ReaderStalledBehindABusyTask", func(t *testing.T, m *procman.Manager) (*procman.Process, *child) {
			// A Child reads invocations ahead of its task, on a
			// goroutine, into a channel (64 deep today). The first
			// frame names "block", which Next hands to the task,
			// which never asks for more. The reader fills the
			// channel with the small frames that follow, takes one
			// more into its hands and waits for room for good; the
			// 8 MiB behind them stays in the pipe (but for what the
			// pipe and the reader's 64 KiB buffer hold) and in the
			// manager's queue. 200 small frames outnumber any
			// read-ahead the child may have.
			p, c := start(t, m, procman.Spec{Invocation: work("block", "", false)})
			waitHeard(t, m, c, wire.KindProgress)
			for range 200 {
				require.NoError(t, p.Send(work("noop", "", false)))
			}
			require.NoError(t, p.Send(big))
			return p, c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := procman.New()
			require.NoError(t, m.Setup())
			defer m.Teardown()
			stuck, sc := tc.startStuck(t, m)

			startEchoes(t, m, 20)
			require.Equal(t, procman.StateRunning, stuck.State(), "the stuck child")
			require.Equal(t, 1, m.ProcessCount())

			require.NoError(t, m.Teardown())
			require.NotNil(t, sc.exit, "Teardown tells the handler")
			require.Equal(t, syscall.SIGKILL, sc.exit.Signal, "%v", sc.exit)
			require.Zero(t, m.ProcessCount())
		})
	}
}

func TestLargeInvocationIsWrittenAsTheChildReads(t *testing.T) {
	payload := randomBytes(8 << 20)
	for _, tc := range []struct {
		name  string
		later bool // sent with Process.Send, not Spec.Invocation
	}{
		{"AsTheSpecInvocation", false},
		{"SentLater", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t)
			var c *child
			if tc.later {
				var p *procman.Process
				p, c = start(t, m, procman.Spec{})
				require.NoError(t, p.Send(work("echo", string(payload), true)))
			} else {
				_, c = start(t, m, procman.Spec{Invocation: work("echo", string(payload), true)})
			}
			e := waitExit(t, m, c)
			require.True(t, e.Success(), "%v", e)
			require.Len(t, c.answers(), 1)
			require.True(t, bytes.Equal(payload, c.answers()[0]), "the 8 MiB came back changed (%d bytes)", len(c.answers()[0]))
		})
	}
}

// startBadAmongGood starts a child that breaks the protocol with task,
// among three well-behaved ones that run at the same time, and returns the
// bad child's handler once all four have exited; the good ones are checked.
func startBadAmongGood(t *testing.T, m *procman.Manager, task, arg string) (*procman.Process, *child) {
	t.Helper()
	p, bad := start(t, m, procman.Spec{Name: "bad", Invocation: work(task, arg, true)})
	var good []*child
	for i := range 3 {
		_, c := start(t, m, procman.Spec{Invocation: work("echo", strconv.Itoa(i), true)})
		good = append(good, c)
	}
	require.NoError(t, m.WaitForAllChildren())
	for i, c := range good {
		require.True(t, c.exit.Success(), "good child %d: %v", i, c.exit)
		require.Equal(t, [][]byte{[]byte(strconv.Itoa(i))}, c.answers(), "good child %d", i)
	}
	require.NotNil(t, bad.exit)
	require.Equal(t, 1, bad.exitCount)
	require.False(t, bad.exit.Success())
	return p, bad
}

func TestFrameOverTheLimitIsAProtocolError(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t, procman.WithMaxPayload(1024))
	p, bad := startBadAmongGood(t, m, "big", "4096")
	var pe *procman.ProtocolError
	require.ErrorAs(t, bad.exit.Err, &pe)
	require.Equal(t, p.Pid(), pe.Pid)
	var tl *procman.FrameTooLargeError
	require.ErrorAs(t, bad.exit.Err, &tl)
	require.Equal(t, uint64(4096+2), tl.Size, "the reply, its invocation's number (one byte) and its kind")
	require.Equal(t, 1024, tl.Limit)
	require.Empty(t, bad.msgs, "no part of the oversized frame is delivered")
}

func TestGarbageOnTheMessagePipeIsAProtocolError(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, bad := startBadAmongGood(t, m, "garbage", "")
	var pe *procman.ProtocolError
	require.ErrorAs(t, bad.exit.Err, &pe)
	require.Equal(t, p.Pid(), pe.Pid)
	require.ErrorIs(t, bad.exit.Err, procman.ErrNotAFrame)
	require.Equal(t, syscall.SIGKILL, bad.exit.Signal, "the manager kills a child that writes garbage: %v", bad.exit)
	require.Empty(t, bad.msgs)
}

func TestTruncatedFrameAtExitIsAProtocolError(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, bad := startBadAmongGood(t, m, "truncate", "")
	var pe *procman.ProtocolError
	require.ErrorAs(t, bad.exit.Err, &pe)
	require.Equal(t, p.Pid(), pe.Pid)
	require.ErrorIs(t, bad.exit.Err, io.ErrUnexpectedEOF)
	require.Zero(t, bad.exit.ExitCode, "it exited on its own")
	require.Empty(t, bad.msgs, "the cut-off frame is not delivered")
}

// A child that begins a frame and writes no more of it is killed once
// the frame wait has passed since the last of it came: a reused child
// that did so and then waited for work would hold its task for ever.
func TestAFrameLeftUnfinishedIsAProtocolError(t *testing.T) {
	t.Run("StoppedIsKilled", func(t *testing.T) {
		leakcheck.Check(t)
		m := newManager(t, procman.WithFrameWait(100*time.Millisecond))
		p, bad := startBadAmongGood(t, m, "stall", "")
		var pe *procman.ProtocolError
		require.ErrorAs(t, bad.exit.Err, &pe)
		require.Equal(t, p.Pid(), pe.Pid)
		require.ErrorContains(t, bad.exit.Err, "a frame stopped 15 bytes into it: nothing more of it came for 100ms")
		require.Equal(t, syscall.SIGKILL, bad.exit.Signal, "%v", bad.exit)
		require.Empty(t, bad.msgs)
	})
	t.Run("AndHungUpIsKilledAfterTheHangupWait", func(t *testing.T) {
		// The pipe's end cuts the frame off: a protocol error at once,
		// and the hangup grace still ends a child that runs on.
		leakcheck.Check(t)
		m := newManager(t, procman.WithHangupWait(100*time.Millisecond))
		p, bad := startBadAmongGood(t, m, "stall", "hangup")
		var pe *procman.ProtocolError
		require.ErrorAs(t, bad.exit.Err, &pe)
		require.Equal(t, p.Pid(), pe.Pid)
		require.ErrorIs(t, bad.exit.Err, io.ErrUnexpectedEOF, "the frame's cut-off is the error, not the hangup")
		require.Equal(t, syscall.SIGKILL, bad.exit.Signal, "%v", bad.exit)
	})
	t.Run("SlowButGoingOnIsNot", func(t *testing.T) {
		// Ten pieces 40 ms apart: 400 ms for the frame, longer than
		// the frame wait, and no gap near it (the wait leaves room for
		// a loaded machine's scheduling delays).
		leakcheck.Check(t)
		m := newManager(t, procman.WithFrameWait(300*time.Millisecond))
		_, c := start(t, m, procman.Spec{Invocation: work("trickle", "", true)})
		e := waitExit(t, m, c)
		require.True(t, e.Success(), "%v", e)
		require.Equal(t, [][]byte{bytes.Repeat([]byte("0123456789"), 10)}, c.answers())
	})
	t.Run("NoLimitAtZero", func(t *testing.T) {
		leakcheck.Check(t)
		m := newManager(t, procman.WithFrameWait(0))
		p, c := start(t, m, procman.Spec{Invocation: work("stall", "", true)})
		until := time.Now().Add(300 * time.Millisecond)
		m.SetDeadline(until)
		for time.Now().Before(until) {
			require.NoError(t, m.Step())
		}
		m.SetDeadline(time.Time{})
		require.Nil(t, c.exit, "no limit: the child runs on")
		require.Equal(t, procman.StateRunning, p.State())
		require.NoError(t, p.Signal(syscall.SIGKILL))
		waitExit(t, m, c)
	})
}

func TestChildThatClosesItsMessagePipe(t *testing.T) {
	t.Run("AndRunsOnIsKilledAfterTheHangupWait", func(t *testing.T) {
		leakcheck.Check(t)
		m := newManager(t, procman.WithHangupWait(50*time.Millisecond))
		_, bad := startBadAmongGood(t, m, "hangup", "")
		require.ErrorIs(t, bad.exit.Err, procman.ErrHungUp)
		require.Equal(t, syscall.SIGKILL, bad.exit.Signal, "%v", bad.exit)
	})
	t.Run("AndExitsIsNotAnError", func(t *testing.T) {
		leakcheck.Check(t)
		m := newManager(t, procman.WithHangupWait(safety))
		_, c := start(t, m, procman.Spec{Invocation: work("hangup", "exit", true)})
		e := waitExit(t, m, c)
		require.True(t, e.Success(), "%v", e)
	})
}

// A child that exits before it reads a byte of its invocation is told
// apart (Exit.NeverRead) from one that took its invocation and then
// failed: no task began in it.
func TestAChildThatExitsBeforeReadingIsMarkedNeverRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"SmallInvocation", 10},
		{"InvocationLargerThanThePipe", 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t)
			p, c := start(t, m, procman.Spec{Env: []string{envExitEarly + "=7"}, Invocation: work("echo", string(randomBytes(tc.size)), true)})
			e := waitExit(t, m, c)
			require.Equal(t, 7, e.ExitCode, "%v", e)
			require.NoError(t, e.Err)
			require.True(t, e.NeverRead, "Exit.NeverRead of a child that read nothing")
			require.Empty(t, c.msgs)
			require.ErrorIs(t, p.Send(work("echo", "x", true)), procman.ErrInputClosed)
		})
	}
}

// A child that exited before the manager wrote a byte of its invocation
// read none of it: on a loaded machine the parent can lose the CPU
// between starting a child and writing its first invocation, and a child
// that fails at once is gone by then. Here the test waits for the exit
// before it sends.
func TestAChildGoneBeforeItsInvocationWasWrittenIsMarkedNeverRead(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{Env: []string{envExitEarly + "=7"}})
	waitExited(t, p.Pid())
	require.NoError(t, p.Send(work("echo", "x", true)))
	e := waitExit(t, m, c)
	require.Equal(t, 7, e.ExitCode, "%v", e)
	require.True(t, e.NeverRead, "Exit.NeverRead of a child gone before its invocation was written")
}

// Answers are bound to the invocations they answer: a child sends three
// invocations' worth of answers in order, and the first task writes a
// forged frame to the pipe before its own answer. The handler hears an
// answer only for its own invocation, once: a frame for an invocation
// already answered is dropped, and one for an invocation not yet due, or
// never sent, or without a number, is a protocol error.
func TestAnswersAreBoundToTheirInvocations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forged  []byte
		answers []string // what the handler hears, in order
		err     string   // the protocol error; empty: none, the child exits 0
	}{
		{"SecondAnswerForItsOwnInvocation", procman.AppendNumberedFrame(nil, procman.FrameReply, 1, wire.KindAnswer, []byte("forged")),
			[]string{"answer forged", "answer b", "answer c"}, ""},
		{"FailureForItsOwnInvocation", procman.AppendNumberedFrame(nil, procman.FrameReply, 1, wire.KindTaskFailed, []byte("forged")),
			[]string{"task-failed forged", "answer b", "answer c"}, ""},
		{"AnswerForTheNextInvocation", procman.AppendNumberedFrame(nil, procman.FrameReply, 2, wire.KindAnswer, []byte("forged")),
			nil, "reply frame for invocation 2 while invocation 1 runs"},
		{"ProgressForTheNextInvocation", procman.AppendNumberedFrame(nil, procman.FrameNote, 3, wire.KindProgress, []byte("forged")),
			nil, "note frame for invocation 3 while invocation 1 runs"},
		{"AnswerForAnInvocationNeverSent", procman.AppendNumberedFrame(nil, procman.FrameReply, 4, wire.KindAnswer, []byte("forged")),
			nil, "reply frame for invocation 4, which was never sent (3 were)"},
		{"AnswerNumberedZero", procman.AppendFrame(nil, procman.FrameReply, []byte{0, 'x'}),
			nil, "reply frame: procman: a numbered frame without a valid invocation number"},
		{"AnswerWithoutANumber", procman.AppendFrame(nil, procman.FrameReply, nil),
			nil, "reply frame: procman: a numbered frame without a valid invocation number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t)
			p, c := start(t, m, procman.Spec{})
			forge := "forge"
			if tc.err != "" {
				forge = "forge-block" // it waits to be killed
			}
			require.NoError(t, p.Send(work(forge, string(tc.forged), false)))
			require.NoError(t, p.Send(work("echo", "b", false)))
			require.NoError(t, p.Send(work("echo", "c", true)))
			e := waitExit(t, m, c)
			var got []string
			for _, msg := range c.msgs {
				if msg.reply {
					got = append(got, wire.KindName(msg.kind)+" "+string(msg.payload))
				}
			}
			require.Equal(t, tc.answers, got, "the terminal frames the handler heard")
			if tc.err == "" {
				require.True(t, e.Success(), "%v", e)
				return
			}
			var pe *procman.ProtocolError
			require.ErrorAs(t, e.Err, &pe, "%v", e)
			require.Equal(t, p.Pid(), pe.Pid)
			require.ErrorContains(t, e.Err, tc.err)
			require.Equal(t, syscall.SIGKILL, e.Signal, "a child that breaks the protocol is killed: %v", e)
		})
	}
}

// A frame's header alone does not make the manager allocate the payload
// it claims: children that each send the header of a 1 GiB answer and
// then wait add far less than that to the parent's heap, and are killed
// after the frame wait.
func TestAHeaderAloneDoesNotAllocateItsClaim(t *testing.T) {
	leakcheck.Check(t)
	const children, claim = 4, 1 << 30
	m := newManager(t, procman.WithFrameWait(300*time.Millisecond))
	var before, at runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cs := make([]*child, children)
	exited := 0
	for i := range cs {
		_, cs[i] = start(t, m, procman.Spec{Invocation: work("claim", strconv.Itoa(claim), true)})
		cs[i].onExit = func(*procman.Process, *procman.Exit) {
			exited++
			if exited == children {
				// Every child's frame was read as far as it goes (the
				// frame wait ran out), and its decoder is still there.
				runtime.ReadMemStats(&at)
			}
		}
	}
	stepUntil(t, m, func() bool { return exited == children })
	for i, c := range cs {
		var pe *procman.ProtocolError
		require.ErrorAs(t, c.exit.Err, &pe, "child %d: %v", i, c.exit)
		require.ErrorContains(t, c.exit.Err, "a frame stopped 5 bytes into it", "child %d", i)
		require.Equal(t, syscall.SIGKILL, c.exit.Signal, "child %d: %v", i, c.exit)
		require.Empty(t, c.msgs, "child %d", i)
	}
	allocated := at.TotalAlloc - before.TotalAlloc
	require.Less(t, allocated, uint64(64<<20), "the parent allocated %d MiB for %d children that each sent the header of a %d MiB frame and nothing more", allocated>>20, children, claim>>20)
}

// The manager keeps nothing of a large answer once its handler has it: a
// child that lives on, waiting for work, does not hold the memory of its
// last answer in its parent.
func TestALargeAnswerIsNotKeptOnceHandled(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{Invocation: work("big", strconv.Itoa(8<<20), false)})
	var answer weak.Pointer[byte]
	c.onMessage = func(_ *procman.Process, k procman.Kind, payload []byte) {
		if k == wire.KindAnswer {
			answer = weak.Make(&payload[0])
		}
	}
	stepUntil(t, m, func() bool { return len(c.answers()) == 1 })
	require.Len(t, c.answers()[0], 8<<20)
	c.msgs = nil // the handler drops the answer
	runtime.GC()
	require.Nil(t, answer.Value(), "the parent still holds the 8 MiB answer once its handler dropped it")
	require.Equal(t, procman.StateRunning, p.State(), "the child waits for work")
	p.CloseInput()
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
}

// A child that read its invocation and then failed did take it:
// Exit.NeverRead is false, and so it is for a child that was sent nothing.
func TestChildThatReadItsInvocationIsNotNeverRead(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	_, c := start(t, m, procman.Spec{Invocation: work("exit", "42", true)})
	e := waitExit(t, m, c)
	require.Equal(t, 42, e.ExitCode, "%v", e)
	require.False(t, e.NeverRead, "Exit.NeverRead of a child that read its invocation")

	_, c = start(t, m, procman.Spec{Env: []string{envExitEarly + "=7"}})
	e = waitExit(t, m, c)
	require.Equal(t, 7, e.ExitCode, "%v", e)
	require.False(t, e.NeverRead, "Exit.NeverRead of a child that was sent nothing")
}

// A note for an invocation already answered is dropped: it never reaches
// the handler as a note about the invocation that runs next.
func TestALateNoteIsDroppedNotGivenToTheNextInvocation(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t)
	p, c := start(t, m, procman.Spec{})
	late := procman.AppendNumberedFrame(nil, procman.FrameNote, 1, wire.KindProgress, []byte("late"))
	require.NoError(t, p.Send(work("reply-then-write", string(late), false)))
	require.NoError(t, p.Send(work("echo", "b", true)))
	e := waitExit(t, m, c)
	require.True(t, e.Success(), "%v", e)
	var got []string
	for _, msg := range c.msgs {
		got = append(got, fmt.Sprintf("reply=%v %s", msg.reply, msg.payload))
	}
	require.Equal(t, []string{"reply=true real", "reply=true b"}, got, "what the handler heard")
}
