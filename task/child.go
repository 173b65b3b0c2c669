package task

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	childentry "github.com/procrastinate-go/procrastinate/internal/entry"
	"github.com/procrastinate-go/procrastinate/internal/osproc"
	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
	"github.com/procrastinate-go/procrastinate/internal/tune"
	"github.com/procrastinate-go/procrastinate/internal/wire"
	"github.com/procrastinate-go/procrastinate/procman"
)

// serve runs, in a child process, the invocations its parent sends: for
// each it finds the defined task by name, decodes the argument, calls the
// function and sends back the result or the failure. It returns nil when
// the parent has no more work for the child (the last invocation was
// served, or the parent said goodbye while the child was idle) and an error when the
// invocation stream is broken. procrastinate.Main passes it to
// procman.Serve, through internal/entry.
//
// Inside the child, the task's context ends at the invocation's deadline,
// when the parent asks the child to stop (a stop frame), and on the
// invocation's termination signal (the first step of the parent's
// termination sequence for a call it may cancel), so that a task that
// watches its context returns cleanly. The signal is caught from the start
// only for an invocation that says the parent may send it
// (wire.Invocation.CatchTerm); a stop frame that comes while a task runs
// has the child catch it then and send it to its own process group, so
// that what the task started gets it too. Once caught, that signal ends
// an idle child at once.
func init() { childentry.Serve = serve }

func serve(c *procman.Child) error {
	root, cancel := context.WithCancel(context.WithValue(context.Background(), childKey, c))
	defer cancel()
	// The termination signal is caught only when it may come: a call
	// that the parent will never signal keeps the signal's default.
	term := &termCatcher{sigs: make(chan os.Signal, 1)}
	defer signal.Stop(term.sigs)
	var running atomic.Int32 // the running invocation's TermSignal; 0: none runs
	served := 0              // invocations taken
	if !tune.Queued(c) {
		warmUp() // a child with nothing to do yet: a spare, or a worker in waiting
	}
	w := &withdrawals{skip: make(map[uint64]bool)}
	withdrawn, take := tune.Withdrawals(c)
	go func() {
		for {
			select {
			case <-term.sigs:
			case <-c.Stopped():
				if sig := int(running.Load()); sig > 0 && term.catch(sig) {
					// Asked to stop while a task runs, by a parent that
					// does not signal this child: what the task started
					// gets the signal from here, the child itself through
					// its new handler.
					_ = osproc.SignalGroup(syscall.Signal(sig))
				}
			case <-withdrawn:
				seq, later, cut := w.absorb(take())
				for _, n := range later {
					// The parent may resolve it now, without waiting
					// for the task that runs.
					_ = c.Note(seq, wire.KindWithdrawn, binary.AppendUvarint(nil, n))
				}
				if !cut {
					continue
				}
				// The running invocation was withdrawn: the first step
				// of the termination sequence, taken here, for the
				// parent does not know whether it had begun.
				if sig := int(running.Load()); sig > 0 {
					term.catch(sig)
					_ = osproc.SignalGroup(syscall.Signal(sig))
				}
			case <-root.Done():
				return
			}
			cancel() // an idle child returns from Next; a busy one's task sees its ctx end
			return
		}
	}()
	for {
		seq, p, err := c.Next(root)
		if err == io.EOF || (root.Err() != nil && errors.Is(err, root.Err())) {
			return c.Err() // no more work, or told to stop: nil, unless the control pipe broke
		}
		if err != nil {
			return err
		}
		inv, err := wire.DecodeInvocation(p)
		if err != nil {
			return fmt.Errorf("the parent sent an invocation that does not decode (are parent and child the same build?): %w", err)
		}
		if w.begin(seq, take()) {
			// Withdrawn before it began: it never runs.
			if err := c.Reply(wire.KindSkipped, nil); err != nil {
				return err
			}
			if inv.Last {
				return finish(c, root, inv)
			}
			continue
		}
		if inv.CatchTerm {
			term.catch(inv.TermSignal)
		}
		running.Store(int32(inv.TermSignal))
		var cost meter
		if inv.Usage {
			cost = startMeter(inv.Last && served == 0)
		}
		served++
		kind, out := runOne(context.WithValue(root, childKey, invocationOf{c, seq}), inv, func(kind procman.Kind, out []byte) {
			// The task called runtime.Goexit. It ends this goroutine,
			// the child's main one, whatever is done here; answer, so
			// that the future resolves, and end the child, which has no
			// goroutine left to serve its invocations.
			err := c.Reply(kind, out)
			fmt.Fprintf(os.Stderr, "procrastinate: child %d: task %q called runtime.Goexit; the child ends (answering: %v)\n", os.Getpid(), inv.Task, err)
			c.Exit(1)
		})
		running.Store(0)
		cut := w.end()
		// What it cost, when the parent asked, goes before the answer, so
		// that the future has it when it resolves.
		if inv.Usage {
			if err := c.Note(seq, wire.KindUsage, wire.AppendUsage(nil, cost.end())); err != nil {
				return err
			}
		}
		// Retiring goes before the answer, so that the parent knows not to
		// hand this child more work by the time it sees the answer.
		retire := inv.MaxRSS > 0 && peakRSS() > inv.MaxRSS
		if retire {
			if err := c.Note(seq, wire.KindRetiring, nil); err != nil {
				return err
			}
		}
		// So does the word that it stopped a withdrawn invocation: the
		// invocations sent after it never begin.
		if cut {
			if err := c.Note(seq, wire.KindStopped, nil); err != nil {
				return err
			}
		}
		tracepoint.Mark(tracepoint.AnswerWrite)
		if err := c.Reply(kind, out); err != nil {
			return err
		}
		if inv.Last || retire || cut || root.Err() != nil {
			return finish(c, root, inv)
		}
	}
}

// finish ends a child's service after its last answer.
func finish(c *procman.Child, root context.Context, inv *wire.Invocation) error {
	if inv.Last && inv.Linger {
		// The parent says goodbye once it has taken the answer; the
		// teardown waits for that (see wire.Invocation). It waits as an
		// idle child waits for work, with no timer and no other
		// goroutine to wake: the goodbye, a stop, or its parent's death
		// ends the wait. It waits first and lowers its priority after: a
		// child woken on the parent's CPU has the parent waiting behind it
		// until it sleeps, and the system call would delay the answer.
		_, p, err := c.Next(root)
		lowerPriority()
		if err == nil {
			return fmt.Errorf("the parent sent an invocation (%d bytes) after the last one", len(p))
		}
	} else {
		lowerPriority()
	}
	return c.Err()
}

// withdrawals keeps what the parent withdrew (see tune.Withdraw) against
// what the child began: an invocation withdrawn before it begins is
// skipped; one withdrawn while it runs is stopped, and the child ends
// after its answer; one withdrawn once answered is no concern. Its
// methods are safe for concurrent use.
type withdrawals struct {
	mu      sync.Mutex
	skip    map[uint64]bool // withdrawn and not begun
	begun   uint64          // the last invocation begun or skipped
	running uint64          // the invocation that runs; 0: none
	cut     bool            // the running invocation was withdrawn
}

// absorb records the withdrawn invocations ns. It returns the invocation
// that runs, the withdrawn ones that will not begin (to say so while one
// runs), and whether the one that runs was withdrawn, the first time.
func (w *withdrawals) absorb(ns []uint64) (running uint64, later []uint64, cut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range ns {
		switch {
		case n > w.begun:
			if !w.skip[n] {
				w.skip[n] = true
				later = append(later, n)
			}
		case n == w.running && !w.cut:
			w.cut, cut = true, true
		}
	}
	if w.running == 0 {
		later = nil
	}
	return w.running, later, cut
}

// begin records that invocation seq comes, after taking the withdrawals
// ns, and reports whether it was withdrawn: then it is skipped.
func (w *withdrawals) begin(seq uint64, ns []uint64) (skip bool) {
	w.absorb(ns)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.begun = seq
	if w.skip[seq] {
		delete(w.skip, seq)
		return true
	}
	w.running = seq
	return false
}

// end records that the invocation that ran has its answer, and reports
// whether it was withdrawn while it ran.
func (w *withdrawals) end() (cut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = 0
	return w.cut
}

// lowerPriority is for a child whose answers are out: what is left is
// this process's exit, whose teardown of a Go runtime's memory costs a few
// hundred microseconds of CPU. At the lowest priority it does not compete
// with the parent and the caller for the CPU.
func lowerPriority() { osproc.SetGroupNice(19) }

// runOne runs one invocation and returns the frame to answer with. If the
// task calls runtime.Goexit, runOne does not return: it calls goexit with
// the frame instead, while the goroutine unwinds.
func runOne(root context.Context, inv *wire.Invocation, goexit func(procman.Kind, []byte)) (procman.Kind, []byte) {
	e := lookup(inv.Task)
	if e == nil {
		return failure(fmt.Sprintf("task: no task named %q is defined in this program (Define it at package level, so that it is defined in every copy of the program)", inv.Task), "", false)
	}
	return runEntry(root, inv, e, true, goexit)
}

// runEntry is runOne once the task is found; traced says whether it
// marks the task's start and end (see internal/tracepoint): not for
// warmUp's task, which would stand in a task's marks.
func runEntry(root context.Context, inv *wire.Invocation, e *entry, traced bool, goexit func(procman.Kind, []byte)) (procman.Kind, []byte) {
	ctx := root
	if inv.LockDir != "" {
		ctx = context.WithValue(ctx, lockDirKey, inv.LockDir)
	}
	if !inv.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, inv.Deadline)
		defer cancel()
	}
	ctx, progress := withReporter(ctx)
	if traced {
		tracepoint.Mark(tracepoint.TaskStarted)
	}
	out, panicked, stack, err := protect(ctx, e, inv.Arg, func(stack string) {
		progress.finish()
		goexit(failure(fmt.Sprintf("task %q called runtime.Goexit instead of returning", inv.Task), stack, false))
	})
	progress.finish() // the last report goes before the answer; later ones are dropped
	if traced {
		tracepoint.Mark(tracepoint.TaskDone)
	}
	if panicked {
		return failure(err.Error(), stack, true)
	}
	if err != nil {
		return failure(err.Error(), "", false)
	}
	return wire.KindAnswer, out
}

// protect runs e, turning a panic into an error with its stack. A task
// that calls runtime.Goexit neither returns nor panics: protect then calls
// goexited with the stack where it was called, and does not return.
func protect(ctx context.Context, e *entry, arg []byte, goexited func(stack string)) (out []byte, panicked bool, stack string, err error) {
	returned := false
	defer func() {
		if v := recover(); v != nil {
			panicked, stack, err = true, string(debug.Stack()), fmt.Errorf("%v", v)
			return
		}
		if !returned {
			goexited(string(debug.Stack()))
		}
	}()
	out, err = e.run(ctx, arg)
	returned = true
	return out, false, "", err
}

func failure(msg, stack string, panicked bool) (procman.Kind, []byte) {
	return wire.KindTaskFailed, wire.AppendFailure(nil, &wire.Failure{Message: msg, Stack: stack, Panicked: panicked})
}

// peakRSS is this process's own peak resident set in bytes: VmHWM, the
// high-water mark of its memory since exec. getrusage's ru_maxrss will
// not do: Linux carries into it the peak of the image that exec replaced,
// and a child starts as a copy of its parent (vfork), so a child would
// report its parent's peak and retire after every task once the parent
// had passed the bound. Where /proc is not mounted it falls back to
// ru_maxrss.
func peakRSS() int64 {
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		if kB, ok := statusKB(data, "VmHWM:"); ok {
			return kB * 1024
		}
	}
	return osproc.MaxRSS()
}

// statusKB returns the value of field (as "VmHWM:") in the text of
// /proc/<pid>/status, in kB.
func statusKB(status []byte, field string) (int64, bool) {
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, field)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// warmUp runs, once, the paths a task takes (the codec over every defined
// task's types, and the framework's own path: an invocation decoded, a
// context with a value and a deadline, a no-op task run, its answer
// framed), so that a child started ahead of its work (a spare) pays their
// first-use costs while it waits rather than while its first task does.
// The costs are type setup, and above all page faults: the first object of
// each size class that a fresh Go process allocates starts a span on a page
// it has never touched, a fault each, 8 to 12 of them in a spare's first
// task before this warm-up ran the framework's path (perf,
// exceptions:page_fault_user).
func warmUp() {
	regMu.RLock()
	entries := make([]*entry, 0, len(registry))
	for _, e := range registry {
		entries = append(entries, e)
	}
	regMu.RUnlock()
	for _, e := range entries {
		func() {
			defer func() { _ = recover() }() // a codec that panics on a zero value
			e.warm()
		}()
	}
	p := wire.AppendInvocation(nil, &wire.Invocation{Task: warmEntry.name, Arg: []byte{0}, Deadline: time.Now().Add(time.Hour), LockDir: os.TempDir()})
	if inv, err := wire.DecodeInvocation(p); err == nil {
		_, _ = runEntry(context.Background(), inv, warmEntry, false, func(procman.Kind, []byte) {})
	}
}

// warmEntry is the no-op task that warmUp runs. It is not in the registry:
// no invocation can name it.
var warmEntry = &entry{
	name: "procrastinate: warm-up",
	run:  func(_ context.Context, arg []byte) ([]byte, error) { return arg, nil },
}

// termCatcher installs the child's handlers for termination signals, each
// once, from whichever goroutine needs one first.
type termCatcher struct {
	mu     sync.Mutex
	caught [wire.MaxSignal + 1]bool // by signal number
	sigs   chan os.Signal
}

// catch installs the handler for sig, if it is a signal and not handled
// yet, and reports whether it installed it.
func (t *termCatcher) catch(sig int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sig <= 0 || sig >= len(t.caught) || t.caught[sig] {
		return false
	}
	t.caught[sig] = true
	signal.Notify(t.sigs, syscall.Signal(sig))
	return true
}
