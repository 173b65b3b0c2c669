package procman_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"

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

// fileHead is the start of a file frame for answer 1 of size bytes,
// without its mark.
func fileHead(size int) []byte {
	return procman.AppendFileHead(nil, procman.FrameReply, 1, wire.KindAnswer, size)
}

// A file frame that a child does not finish, or that breaks the protocol,
// fails the child as a frame on the pipe would; one that says its file
// did not come is passed over, and the frame after it delivered. The same
// on both backends.
func TestAFileFrameIsCheckedAsTheFrameItStandsFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     rawFile
		check func(t *testing.T, p *procman.Process, c *child)
	}{
		{"CutOffByTheExit", rawFile{Stream: fileHead(100)}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorIs(t, c.exit.Err, io.ErrUnexpectedEOF, "the frame's cut-off is the error")
			require.Zero(t, c.exit.ExitCode, "it exited on its own: %v", c.exit)
		}},
		{"SentWithoutItsFile", rawFile{Stream: append(fileHead(100), procman.FileSent), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorContains(t, c.exit.Err, "no file came with it")
			require.Equal(t, syscall.SIGKILL, c.exit.Signal, "the manager kills it: %v", c.exit)
		}},
		{"WithABadMark", rawFile{Stream: append(fileHead(100), 7), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorIs(t, c.exit.Err, procman.ErrNotAFrame)
		}},
		{"ForAStopFrame", rawFile{Stream: append(procman.AppendFileHead(nil, procman.FrameStop, 1, wire.KindAnswer, 100), procman.FileSent), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			require.ErrorIs(t, c.exit.Err, procman.ErrNotAFrame)
		}},
		{"OverTheLimit", rawFile{Stream: append(fileHead(4096), procman.FileNone), Block: true}, func(t *testing.T, p *procman.Process, c *child) {
			requireProtocolError(t, p, c)
			var tl *procman.FrameTooLargeError
			require.ErrorAs(t, c.exit.Err, &tl)
			require.Equal(t, uint64(4096+2), tl.Size, "the payload, its invocation's number (one byte) and its kind")
			require.Equal(t, 1024, tl.Limit)
		}},
		{"WithoutItsFileThenByThePipe", rawFile{Stream: procman.AppendNumberedFrame(append(fileHead(11), procman.FileNone), procman.FrameReply, 1, wire.KindAnswer, []byte("by the pipe"))}, func(t *testing.T, p *procman.Process, c *child) {
			require.True(t, c.exit.Success(), "%v", c.exit)
			require.Equal(t, [][]byte{[]byte("by the pipe")}, c.answers(), "the answer that came by the pipe, once")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			m := newManager(t, procman.WithMaxPayload(1024))
			p, c := start(t, m, procman.Spec{Invocation: rawFileWork(t, tc.r)})
			waitExit(t, m, c)
			tc.check(t, p, c)
		})
	}
}

// On the portable backend the payload of a file frame is read from the
// file that came on the file socket; a file that does not hold it, or
// anything but one file, fails the child. The Linux backend takes no
// file: a file frame that says one came fails the child there.
func TestAFileFrameTakesItsPayloadFromItsFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		r        rawFile
		portable string // the error on the portable backend; "": none, the answer is "0123456789"
	}{
		{"WithItsFile", rawFile{Send: "file", File: []byte("0123456789"), Stream: append(fileHead(10), procman.FileSent)}, ""},
		{"WithAShorterFile", rawFile{Send: "file", File: []byte("0123456789"), Stream: append(fileHead(100), procman.FileSent), Block: true}, "ended 10 bytes into the payload"},
		{"WithAPipe", rawFile{Send: "pipe", Stream: append(fileHead(10), procman.FileSent), Block: true}, "is not a regular file"},
		{"WithTwoFiles", rawFile{Send: "two", File: []byte("0123456789"), Stream: append(fileHead(10), procman.FileSent), Block: true}, "2 descriptors came with it; want 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !testio.PortableBackend && tc.r.Send != "file" {
				t.Skip("the Linux backend gives its children no file socket to send on")
			}
			leakcheck.Check(t)
			m := newManager(t)
			r := tc.r
			if !testio.PortableBackend {
				r.Send = "" // the child has no fd 6 here
			}
			p, c := start(t, m, procman.Spec{Invocation: rawFileWork(t, r)})
			waitExit(t, m, c)
			switch {
			case !testio.PortableBackend:
				requireProtocolError(t, p, c)
				require.ErrorContains(t, c.exit.Err, "this backend takes none")
			case tc.portable == "":
				require.True(t, c.exit.Success(), "%v", c.exit)
				require.Equal(t, [][]byte{[]byte("0123456789")}, c.answers())
			default:
				requireProtocolError(t, p, c)
				require.ErrorContains(t, c.exit.Err, tc.portable)
				require.Equal(t, syscall.SIGKILL, c.exit.Signal, "the manager kills it: %v", c.exit)
			}
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
			n := 2 << 20
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
