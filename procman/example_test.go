package procman_test

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/procrastinate-go/procrastinate/procman"
)

// The kinds this example's parent and child agree on.
const (
	kindUpper   procman.Kind = 1 // a reply: the invocation in upper case
	kindWorking procman.Kind = 2 // a note: the child has begun
)

// upper is the example's child: what it runs instead of main, started
// by a program whose main calls procman.Serve(upper) first thing. It
// answers each invocation with its payload in upper case, after a note,
// until the parent says goodbye.
func upper(c *procman.Child) error {
	for {
		seq, payload, err := c.Next(context.Background())
		if err == io.EOF {
			return nil // the parent has no more work
		}
		if err != nil {
			return err
		}
		if err := c.Note(seq, kindWorking, nil); err != nil {
			return err
		}
		if err := c.Reply(kindUpper, bytes.ToUpper(payload)); err != nil {
			return err
		}
	}
}

// printer is the example's Handler: it prints what the child sends, and
// says goodbye after the first reply.
type printer struct{}

func (printer) Note(p *procman.Process, kind procman.Kind, payload []byte) {
	fmt.Println("note: working")
}

func (printer) Reply(p *procman.Process, kind procman.Kind, payload []byte) {
	fmt.Printf("reply: %s\n", payload)
	p.CloseInput() // no more work: the child's Next returns io.EOF
}

func (printer) Exited(p *procman.Process, e *procman.Exit) {
	fmt.Println("exited with status", e.ExitCode)
}

// Example starts a child that runs upper (this test binary's TestMain
// calls procman.Serve(upper) in a child whose environment says so), sends
// it one invocation, and steps until the child has exited and been
// reaped.
func Example() {
	m := procman.New()
	if err := m.Setup(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Teardown()
	_, err := m.CreateProcess(procman.Spec{
		Env:        []string{envExample + "=1"},
		Invocation: []byte("hello"),
	}, printer{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.WaitForAllChildren(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// note: working
	// reply: HELLO
	// exited with status 0
}
