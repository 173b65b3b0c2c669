// Command goreexec is the Go floor under a fresh process per task: the
// least a Go program can do to run each task in a new process of its own.
// It starts itself again n times, two children alive at a time; each child
// writes an 8-byte answer on a pipe and exits, and the parent reads the
// answer and reaps the child. Nothing of the library is linked in, and the
// program imports as little as it can, so that a child's start is the Go
// runtime's and little else.
//
//	go build -o goreexec ./bench/goreexec && ./goreexec 1000
//
// It prints one line in the format of go test -bench: the wall time per
// task, tasks/s, and the CPU per task of this process and of its children.
package main

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// childEnv marks a child in its environment.
const childEnv = "GOREEXEC_CHILD=1"

// isChild reports whether this process is a child.
func isChild() bool { return os.Getenv("GOREEXEC_CHILD") == "1" }

// answer is a child's whole life: 8 bytes on fd 3, and exit.
func answer() {
	if _, err := syscall.Write(3, []byte("answered")); err != nil {
		os.Exit(3)
	}
	os.Exit(0)
}

// inFlight is how many children are alive at a time.
const inFlight = 2

func main() {
	if isChild() {
		answer()
	}
	if len(os.Args) != 2 {
		fail(2, "usage: goreexec tasks")
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fail(2, "usage: goreexec tasks (a number of tasks, 1 or more)")
	}
	exe, err := os.Executable()
	if err != nil {
		fail(1, "goreexec: "+err.Error())
	}
	attr := syscall.ProcAttr{Env: append(os.Environ(), childEnv)}
	self0, kids0, t0 := cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN), time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := once(exe, attr); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	dt := time.Since(t0)
	select {
	case err := <-errs:
		fail(1, "goreexec: "+err.Error())
	default:
	}
	self, kids := cpu(syscall.RUSAGE_SELF)-self0, cpu(syscall.RUSAGE_CHILDREN)-kids0
	perTask := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d.Nanoseconds())/1e3/float64(n), 'f', 1, 64)
	}
	line := "BenchmarkGoReexec\t" + strconv.Itoa(n) +
		"\t" + strconv.FormatInt(dt.Nanoseconds()/int64(n), 10) + " ns/op" +
		"\t" + strconv.FormatFloat(float64(n)/dt.Seconds(), 'f', 0, 64) + " tasks/s" +
		"\t" + perTask(self) + " parent-cpu-µs/task" +
		"\t" + perTask(kids) + " child-cpu-µs/task\n"
	os.Stdout.WriteString(line)
}

// once starts one child with a pipe on its fd 3, reads its 8 bytes and
// reaps it.
func once(exe string, attr syscall.ProcAttr) error {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	attr.Files = []uintptr{0, 1, 2, uintptr(p[1])}
	pid, err := syscall.ForkExec(exe, []string{exe}, &attr)
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return err
	}
	var answer [8]byte
	got := 0
	for got < len(answer) {
		k, err := syscall.Read(p[0], answer[got:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || k == 0 {
			break
		}
		got += k
	}
	syscall.Close(p[0])
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return err
	}
	if got != len(answer) || !ws.Exited() || ws.ExitStatus() != 0 {
		return &childError{pid, got, ws}
	}
	return nil
}

// childError is a child that did not answer 8 bytes and exit with 0.
type childError struct {
	pid    int
	got    int
	status syscall.WaitStatus
}

func (e *childError) Error() string {
	return "child " + strconv.Itoa(e.pid) + " answered " + strconv.Itoa(e.got) +
		" bytes of 8 and ended with status " + strconv.Itoa(int(e.status)) + "; want 8 bytes and exit 0"
}

// cpu returns the user and system time of who.
func cpu(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		fail(1, "goreexec: getrusage: "+err.Error())
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fail(code int, msg string) {
	os.Stderr.WriteString(msg + "\n")
	os.Exit(code)
}
