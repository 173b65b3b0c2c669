package procman_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/testio"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// rawFile is what the raw-file child does: it sends Send on its file
// socket (fd 6), writes Stream to its message pipe as it is, and then
// exits with status 0, or with Block blocks until it is killed.
type rawFile struct {
	Send   string // "": nothing; "file": a file holding File; "pipe": a pipe; "two": two files
	File   []byte
	Stream []byte
	Block  bool
}

// kindNote is the kind of the notes the test children send.
const kindNote procman.Kind = 2

func init() {
	childTasks["raw-file"] = func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		var r rawFile
		if err := json.Unmarshal(inv.Arg, &r); err != nil {
			return err
		}
		if r.Send != "" {
			var fds []int
			switch r.Send {
			case "file", "two":
				n := 1
				if r.Send == "two" {
					n = 2
				}
				for range n {
					f, err := os.CreateTemp("", "procman-test-")
					if err != nil {
						return err
					}
					os.Remove(f.Name())
					defer f.Close()
					if _, err := f.Write(r.File); err != nil {
						return err
					}
					fds = append(fds, int(f.Fd()))
				}
			case "pipe":
				var p [2]int
				if err := syscall.Pipe(p[:]); err != nil {
					return err
				}
				fds = p[:1]
			}
			if err := unix.Sendmsg(6, []byte{0}, unix.UnixRights(fds...), nil, 0); err != nil {
				return err
			}
		}
		if _, err := syscall.Write(4, r.Stream); err != nil {
			return err
		}
		if r.Block {
			blockForever(true)
		}
		os.Exit(0)
		return nil
	}
	// note-reply sends a note and then an answer, each of random bytes
	// of the size its argument gives (see randomBytes).
	childTasks["note-reply"] = func(c *procman.Child, seq uint64, inv *wire.Invocation) error {
		n, err := strconv.Atoi(string(inv.Arg))
		if err != nil {
			return err
		}
		if err := c.Note(seq, kindNote, randomBytes(n)); err != nil {
			return err
		}
		return c.Reply(wire.KindAnswer, randomBytes(n+1))
	}
}

func rawFileWork(t *testing.T, r rawFile) []byte {
	t.Helper()
	arg, err := json.Marshal(r)
	require.NoError(t, err)
	return work("raw-file", string(arg), true)
}

// fileFrame is a file frame for answer 1 of size bytes, followed by
// file-part frames that say the file holds it up to each of ends.
func fileFrame(size int, ends ...int) []byte {
	b := procman.AppendFileFrame(nil, procman.FrameReply, 1, wire.KindAnswer, size)
	for _, end := range ends {
		b = procman.AppendFilePart(b, end)
	}
	return b
}

// A file frame is checked as the frame it stands for would be, and one
// that breaks the protocol fails the child, the same on both backends.
func TestAFileFrameIsCheckedAsTheFrameItStandsFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     rawFile
		check func(t *testing.T, c *child)
	}{
		{"WithoutItsFile", rawFile{Stream: fileFrame(100), Block: true}, func(t *testing.T, c *child) {
			require.ErrorContains(t, c.exit.Err, "no file came with it")
		}},
		{"ForAStopFrame", rawFile{Stream: procman.AppendFileFrame(nil, procman.FrameStop, 1, wire.KindAnswer, 100), Block: true}, func(t *testing.T, c *child) {
			require.ErrorIs(t, c.exit.Err, procman.ErrNotAFrame)
		}},
		{"OverTheLimit", rawFile{Stream: fileFrame(4096), Block: true}, func(t *testing.T, c *child) {
			var tl *procman.FrameTooLargeError
			require.ErrorAs(t, c.exit.Err, &tl)
			require.Equal(t, uint64(4096+2), tl.Size, "the payload, its invocation's number (one byte) and its kind")
			require.Equal(t, 1024, tl.Limit)
		}},
		{"APartWithoutAFileFrame", rawFile{Stream: procman.AppendFilePart(nil, 10), Block: true}, func(t *testing.T, c *child) {
			require.ErrorContains(t, c.exit.Err, "a file-part frame without a file frame")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t, procman.WithMaxPayload(1024))
			// An answer right after it, likely read in the same round:
			// nothing after a broken frame is delivered.
			r := tc.r
			r.Stream = procman.AppendNumberedFrame(r.Stream, procman.FrameReply, 1, wire.KindAnswer, []byte("after"))
			p, c := start(t, m, procman.Spec{Invocation: rawFileWork(t, r)})
			waitExit(t, m, c)
			requireProtocolError(t, p, c)
			require.Equal(t, syscall.SIGKILL, c.exit.Signal, "the manager kills it: %v", c.exit)
			tc.check(t, c)
		})
	}
}

// On the portable backend the payload of a file frame is read from the
// file that came on the file socket, part by part. A child that dies or
// stalls before the last part fails as one that does so inside a frame on
// the pipe; a file that does not hold what its frame says, or anything
// but one file, fails it too. The Linux backend takes no file: a file
// frame fails the child there.
func TestAFileFrameTakesItsPayloadFromItsFile(t *testing.T) {
	digits := []byte("0123456789")
	for _, tc := range []struct {
		name  string
		r     rawFile
		check func(t *testing.T, p *procman.Process, c *child)
	}{
		{"WithItsFile", rawFile{Send: "file", File: digits, Stream: fileFrame(10, 4, 10)}, func(t *testing.T, p *procman.Process, c *child) {
			require.True(t, c.exit.Success(), "%v", c.exit)
			require.Equal(t, [][]byte{digits}, c.answers())
		}},
		{"CutOffByTheExit", rawFile{Send: "file", File: digits, Stream: fileFrame(10, 4)}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorIs(t, c.exit.Err, io.ErrUnexpectedEOF, "the frame's cut-off is the error")
			require.Zero(t, c.exit.ExitCode, "it exited on its own: %v", c.exit)
		}},
		{"Stalled", rawFile{Send: "file", File: digits, Stream: fileFrame(10, 4), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "a frame stopped 9 bytes into it: nothing more of it came for 100ms")
			require.Equal(t, syscall.SIGKILL, c.exit.Signal, "%v", c.exit)
		}},
		{"GivenUpThenByThePipe", rawFile{Send: "file", File: digits, Stream: procman.AppendNumberedFrame(fileFrame(10, 4, 0), procman.FrameReply, 1, wire.KindAnswer, []byte("by the pipe"))}, func(t *testing.T, p *procman.Process, c *child) {
			require.True(t, c.exit.Success(), "%v", c.exit)
			require.Equal(t, [][]byte{[]byte("by the pipe")}, c.answers(), "the answer that came by the pipe, once")
		}},
		{"WithAShorterFile", rawFile{Send: "file", File: digits, Stream: fileFrame(100, 100), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorIs(t, c.exit.Err, io.ErrUnexpectedEOF)
			require.ErrorContains(t, c.exit.Err, "the file ended before what its frame said it held")
		}},
		{"APartBackwards", rawFile{Send: "file", File: digits, Stream: fileFrame(10, 6, 4), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "says its file holds 4 bytes of 10, after 6")
		}},
		{"APartPastTheEnd", rawFile{Send: "file", File: digits, Stream: fileFrame(10, 11), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "says its file holds 11 bytes of 10, after 0")
		}},
		{"AnotherFrameInside", rawFile{Send: "file", File: digits, Stream: procman.AppendNumberedFrame(fileFrame(10, 4), procman.FrameReply, 1, wire.KindAnswer, []byte("x")), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "a reply frame inside a file frame")
		}},
		{"WithAPipe", rawFile{Send: "pipe", Stream: fileFrame(10, 10), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "is not a regular file")
		}},
		{"WithTwoFiles", rawFile{Send: "two", File: digits, Stream: fileFrame(10, 10), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "2 descriptors came with it; want 1")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !testio.PortableBackend && tc.name != "WithItsFile" {
				t.Skip("the Linux backend gives its children no file socket to send on")
			}
			leakcheck.Check(t)
			m := newManager(t, procman.WithFrameWait(100*time.Millisecond))
			r := tc.r
			if !testio.PortableBackend {
				r.Send, r.Block = "", true // the child has no fd 6 here
			}
			p, c := start(t, m, procman.Spec{Invocation: rawFileWork(t, r)})
			waitExit(t, m, c)
			if !testio.PortableBackend {
				requireProtocolError(t, p, c)
				require.ErrorContains(t, c.exit.Err, "this backend takes none")
				return
			}
			tc.check(t, p, c)
		})
	}
}

// requireProtocolError checks that the child p (handled by c) ended with
// a protocol error of its own, and delivered nothing.
func requireProtocolError(t *testing.T, p *procman.Process, c *child) {
	t.Helper()
	var pe *procman.ProtocolError
	require.ErrorAs(t, c.exit.Err, &pe, "exit %v; want a protocol error", c.exit)
	require.Equal(t, p.Pid(), pe.Pid)
	require.Empty(t, c.msgs, "nothing of a broken frame is delivered")
}

// A note and a reply above the size from which they go by a file (on
// the portable backend) arrive whole, in the order they were sent.
func TestLargeNoteAndReplyArriveWholeInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"", nil},
		// No file can be made: they go by the pipe.
		{"WithoutATempDir", []string{"TMPDIR=/nonexistent/procman-test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t)
			n := 5 << 20 // two parts, from a file
			if procman.FileMin < n {
				n = max(procman.FileMin, 1)
			}
			_, c := start(t, m, procman.Spec{Invocation: work("note-reply", strconv.Itoa(n), true), Env: tc.env})
			e := waitExit(t, m, c)
			require.True(t, e.Success(), "%v", e)
			require.Len(t, c.msgs, 2, "a note and a reply")
			require.Equal(t, kindNote, c.msgs[0].kind, "the note first")
			require.True(t, bytes.Equal(randomBytes(n), c.msgs[0].payload), "the note of %d bytes came back as %d other bytes", n, len(c.msgs[0].payload))
			require.Equal(t, wire.KindAnswer, c.msgs[1].kind, "the reply second")
			require.True(t, bytes.Equal(randomBytes(n+1), c.msgs[1].payload), "the reply of %d bytes came back as %d other bytes", n+1, len(c.msgs[1].payload))
		})
	}
}

// A large reply over the payload limit is refused with the same error on
// both backends, whichever way it came.
func TestLargeReplyOverTheLimitIsAFrameTooLargeError(t *testing.T) {
	leakcheck.Check(t)
	m := newManager(t, procman.WithMaxPayload(1<<20))
	p, bad := startBadAmongGood(t, m, "big", strconv.Itoa(2<<20))
	requireProtocolError(t, p, bad)
	var tl *procman.FrameTooLargeError
	require.ErrorAs(t, bad.exit.Err, &tl)
	require.Equal(t, uint64(2<<20+2), tl.Size, "the reply, its invocation's number (one byte) and its kind")
	require.Equal(t, 1<<20, tl.Limit)
}
