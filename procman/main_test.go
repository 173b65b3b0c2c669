package procman_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// TestMain serves as the child when the test binary is re-executed by a
// Manager: the invocation's task name picks a helper from childTasks.
func TestMain(m *testing.M) {
	procman.Serve(serveChild)
	goleak.VerifyTestMain(m)
}

// childTasks are what a test child can be asked to do. Each gets the
// invocation and the endpoint; a nil error with no answer sent means the
// helper answered itself or meant not to.
var childTasks = map[string]func(c *procman.Child, inv *wire.Invocation) error{
	"echo": func(c *procman.Child, inv *wire.Invocation) error {
		return c.Send(wire.KindAnswer, inv.Arg)
	},
	"exit": func(c *procman.Child, inv *wire.Invocation) error {
		code, _ := strconv.Atoi(string(inv.Arg))
		os.Exit(code)
		return nil
	},
}

func serveChild(c *procman.Child) error {
	for {
		p, err := c.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		inv, err := wire.DecodeInvocation(p)
		if err != nil {
			return err
		}
		f := childTasks[inv.Task]
		if f == nil {
			return fmt.Errorf("no test task %q", inv.Task)
		}
		if err := f(c, inv); err != nil {
			return err
		}
		if inv.Last {
			return nil
		}
	}
}

var errNoAnswer = errors.New("no answer")
