package dispatcher_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/internal/frametest"
	"github.com/procrastinate-go/procrastinate/internal/leakcheck"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

// The fuzz targets of what a parent decodes from its children. The wire
// itself (frames, invocations, failures) is fuzzed in internal/wire; these
// go through the dispatcher. Their seed corpora are in testdata/fuzz, and
// plain go test runs them.

// fuzzMaxPayload is the frame limit of FuzzChildStream's dispatcher: small,
// so that the fuzzer reaches frames over it.
const fuzzMaxPayload = 4 << 10

// FuzzChildStream has a real child write arbitrary bytes to its message
// pipe and exit with status 0 without answering. The future must resolve
// to what a model of the dispatcher's reading predicts from the same
// bytes: the first answer or task failure before anything breaks the
// stream, else a ChildDeath, with a *procman.ProtocolError when the stream
// broke or ended inside a frame. The dispatcher must survive every input.
// It costs a process start per input: fuzz it for minutes, not seconds.
func FuzzChildStream(f *testing.F) {
	leakcheck.Check(f)
	d, err := dispatcher.Start(strategy.Throttled(2),
		dispatcher.WithStderr(nil),
		procmanOptions(procman.WithMaxPayload(fuzzMaxPayload)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = d.Close()
		goleak.VerifyNone(f)
	})
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > 256<<10 {
			t.Skip("larger than a few pipe buffers says nothing new")
		}
		want := modelChildStream(stream, fuzzMaxPayload)
		v, err := await(t, rawStream.Schedule(d, stream))
		var (
			te *result.TaskError
			cd *result.ChildDeath
			pe *procman.ProtocolError
		)
		switch want.kind {
		case "value":
			if err != nil || v != want.value {
				t.Fatalf("Value() = %v, %v; want %d, nil", v, err, want.value)
			}
		case "undecodable answer":
			if err == nil || errors.As(err, &te) || errors.As(err, &cd) || !strings.Contains(err.Error(), "decoding the answer") {
				t.Fatalf("Value() = %v, %v; want an error decoding the answer", v, err)
			}
		case "task error":
			if !errors.As(err, &te) {
				t.Fatalf("Value() = %v, %v; want a *result.TaskError", v, err)
			}
			if want.failure == nil {
				if !strings.HasPrefix(te.Message, "the child's failure report does not decode") {
					t.Fatalf("TaskError.Message = %q; want the report's decoding error", te.Message)
				}
			} else if te.Message != want.failure.Message || te.Stack != want.failure.Stack || te.Panicked != want.failure.Panicked {
				t.Fatalf("TaskError = %+v; want %+v", te, want.failure)
			}
		case "death":
			if !errors.As(err, &cd) {
				t.Fatalf("Value() = %v, %v; want a *result.ChildDeath", v, err)
			}
			if got := errors.As(err, &pe); got != want.protocol {
				t.Fatalf("ChildDeath %v: a protocol error is %v; want %v", err, got, want.protocol)
			}
			if !want.protocol && (cd.ExitCode != 0 || cd.Signal != 0 || cd.Err != nil) {
				t.Fatalf("ChildDeath %v; want an exit with status 0 and no cause", err)
			}
		}
	})
}

type streamWant struct {
	kind     string // value, undecodable answer, task error, death
	value    int
	failure  *wire.Failure // the task error's report; nil: it does not decode
	protocol bool          // the death has a protocol error
}

// modelChildStream predicts what the dispatcher makes of a child that
// wrote stream and exited: procman's reading (frames read with the
// manager's limit and delivered until an error; a reply or a note
// delivered when it is for invocation 1, the only one the child was sent,
// and a protocol error otherwise; a parent's frame from the child is a
// protocol error) and the dispatcher's handling of each (the first reply
// resolves the future, notes change nothing).
func modelChildStream(stream []byte, limit int) streamWant {
	r := bytes.NewReader(stream)
	for {
		c, p, err := frametest.Read(r, limit)
		if err == io.EOF {
			return streamWant{kind: "death"}
		}
		if err != nil {
			return streamWant{kind: "death", protocol: true}
		}
		switch c {
		case frametest.NoMain:
			continue
		case frametest.Reply, frametest.Note:
		default:
			return streamWant{kind: "death", protocol: true}
		}
		n, kind, rest, ok := frametest.CutNumber(p)
		if !ok || n != 1 {
			return streamWant{kind: "death", protocol: true}
		}
		if c == frametest.Note {
			continue
		}
		if kind == wire.KindAnswer {
			var v int
			if err := task.JSON.Unmarshal(rest, &v); err != nil {
				return streamWant{kind: "undecodable answer"}
			}
			return streamWant{kind: "value", value: v}
		}
		f, err := wire.DecodeFailure(rest)
		if err != nil {
			f = nil
		}
		return streamWant{kind: "task error", failure: f}
	}
}

// answerWith is a Scheduler that resolves every call at once with its
// bytes as the child's answer: the parent's decoding, without a child.
type answerWith []byte

func (a answerWith) Submit(c *task.Call) { c.Resolve(bytes.Clone(a)) }

// FuzzDecodeAnswer decodes arbitrary bytes as a child's answer, as
// Result.Value does, for results of several types and both codecs. A
// child's answer must never crash its parent: decoding returns a value or
// an error, never a panic; and a value that decodes encodes and decodes
// again to the same.
func FuzzDecodeAnswer(f *testing.F) {
	f.Fuzz(func(t *testing.T, answer []byte) {
		s := answerWith(answer)
		checkAnswer(t, answerInt, gobcodec.Codec, s)
		checkAnswer(t, answerString, gobcodec.Codec, s)
		checkAnswer(t, answerBytes, gobcodec.Codec, s)
		checkAnswer(t, answerStruct, gobcodec.Codec, s)
		checkAnswer(t, answerMap, gobcodec.Codec, s)
		checkAnswer(t, answerJSON, task.JSON, s)
		checkAnswer(t, answerIntJSON, task.JSON, s)
	})
}

// checkAnswer checks the answer s for def, whose codec is codec.
func checkAnswer[R any](t *testing.T, def *task.Def[int, R], codec task.Codec, s answerWith) {
	t.Helper()
	v, err := def.Schedule(s, 0).Value()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "result: decoding the answer: ") {
			t.Fatalf("%s: Value() error %q; want it to say that decoding the answer failed", def.Name(), err)
		}
		return
	}
	enc, err := codec.Marshal(v)
	if err != nil {
		t.Fatalf("%s: the decoded value %#v does not encode: %v", def.Name(), v, err)
	}
	again, err := def.Schedule(answerWith(enc), 0).Value()
	if err != nil {
		t.Fatalf("%s: the re-encoded value does not decode: %v", def.Name(), err)
	}
	if !reflect.DeepEqual(normalise(v), normalise(again)) {
		t.Fatalf("%s: decoded %#v, then %#v", def.Name(), v, again)
	}
}

// normalise makes empty and nil slices and maps alike, which the codecs
// do not keep apart.
func normalise(v any) string {
	return strings.NewReplacer("[]byte(nil)", "[]byte{}", "[]int(nil)", "[]int{}", "[]dispatcher_test.fuzzItem(nil)", "[]dispatcher_test.fuzzItem{}",
		"map[string][]int(nil)", "map[string][]int{}").Replace(fmt.Sprintf("%#v", v))
}

// FuzzChildDeathError formats the error of a child that died with
// arbitrary bytes on its stderr. Error must stay one line, quote at most
// about 200 bytes of the tail, and quote a true suffix of what the child
// wrote; with those bytes as its Cause too, it must stay one line and
// quote the cause.
func FuzzChildDeathError(f *testing.F) {
	f.Fuzz(func(t *testing.T, stderr []byte, code int, sig uint8, ms int64) {
		e := &result.ChildDeath{
			Task: "dispatcher_test.fuzz", Pid: 1234, ExitCode: code, Signal: syscall.Signal(sig),
			Duration: time.Duration(ms) * time.Millisecond, Stderr: stderr,
		}
		msg := e.Error()
		if strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("Error() is not one line: %q", msg)
		}
		base := (&result.ChildDeath{Task: e.Task, Pid: e.Pid, ExitCode: e.ExitCode, Signal: e.Signal, Duration: e.Duration}).Error()
		withCause := *e
		withCause.Cause = string(stderr)
		if m := withCause.Error(); strings.ContainsAny(m, "\n\r") {
			t.Fatalf("Error() with a Cause is not one line: %q", m)
		} else if len(stderr) > 0 && !strings.HasPrefix(m, base+"; cause: \"") {
			t.Fatalf("Error() = %q; want the quoted cause after %q", m, base)
		}
		if !strings.HasPrefix(msg, base) {
			t.Fatalf("Error() = %q; want it to begin with %q", msg, base)
		}
		rest := strings.TrimPrefix(msg, base)
		if rest == "" {
			return
		}
		const lead = "; its stderr ended with: "
		if !strings.HasPrefix(rest, lead) {
			t.Fatalf("Error() = %q; after %q want %q", msg, base, lead)
		}
		tail, err := strconv.Unquote(rest[len(lead):])
		if err != nil {
			t.Fatalf("the quoted tail %s does not unquote: %v", rest[len(lead):], err)
		}
		if len(tail) == 0 || len(tail) > 200 {
			t.Fatalf("the quoted tail has %d bytes; want 1 to 200", len(tail))
		}
		if !bytes.HasSuffix(bytes.TrimRight(stderr, " \t\r\n"), []byte(tail)) {
			t.Fatalf("the quoted tail %q is not the end of what the child wrote", tail)
		}
	})
}
