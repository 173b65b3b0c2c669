package dispatcher

import (
	"bytes"
	"strings"
)

// crashScan follows a child's stderr line by line and keeps the start of
// the last crash report in it, for result.ChildDeath: its cause (the line
// that says what went wrong, and the lines that go on saying it, up to a
// blank line or a goroutine's stack) and the stack of the first goroutine
// dumped after it, the one that crashed. It sees every line as it passes,
// so that a report longer than the tail kept is still found.
type crashScan struct {
	state      crashState
	cause      []byte
	causeLines int
	stack      []byte
}

// crashState is where crashScan is in a crash report.
type crashState int

const (
	crashNone  crashState = iota // outside a report, or past its first stack
	crashCause                   // in the lines of the cause
	crashGap                     // after the cause, before the first goroutine's stack
	crashStack                   // in the first goroutine's stack
)

// The most of a cause and of a stack that crashScan keeps. A line that
// only looked like a crash's start, followed by ordinary output, makes a
// cause of at most maxCauseLines.
const (
	maxCause      = 4 << 10
	maxCauseLines = 16
	maxStack      = 32 << 10
)

// line takes the next line of the child's stderr, without its newline.
func (s *crashScan) line(l []byte) {
	if s.state != crashCause && crashStart(l) {
		s.cause = appendLine(s.cause[:0], l, maxCause)
		s.causeLines = 1
		s.stack = s.stack[:0]
		s.state = crashCause
		if bytes.HasPrefix(l, []byte("procrastinate: ")) {
			s.state = crashNone // this library's own lines are one line each
		}
		return
	}
	switch s.state {
	case crashCause:
		switch {
		case len(bytes.TrimSpace(l)) == 0:
			s.state = crashGap
		case goroutineHeader(l):
			s.stack = appendLine(s.stack[:0], l, maxStack)
			s.state = crashStack
		case s.causeLines < maxCauseLines:
			s.cause = appendLine(s.cause, l, maxCause)
			s.causeLines++
		}
	case crashGap:
		if goroutineHeader(l) {
			s.stack = appendLine(s.stack[:0], l, maxStack)
			s.state = crashStack
		}
	case crashStack:
		if len(bytes.TrimSpace(l)) == 0 {
			s.state = crashNone
			return
		}
		s.stack = appendLine(s.stack, l, maxStack)
	}
}

// appendLine appends l to b after a newline, if b is not empty, as long as
// b stays within max bytes.
func appendLine(b, l []byte, max int) []byte {
	if len(b) > 0 {
		if len(b)+1+len(l) > max {
			return b
		}
		b = append(b, '\n')
	}
	if len(l) > max {
		l = l[:max]
	}
	return append(b, l...)
}

// results returns the cause and the stack, as result.ChildDeath holds
// them.
func (s *crashScan) results() (cause, stack string) {
	cause = strings.TrimRight(string(s.cause), " \t\r\n")
	if cause == "" {
		return "", ""
	}
	return cause, strings.TrimRight(string(s.stack), " \t\r\n")
}

// crashStarts are the beginnings of the lines that begin a crash report:
// the Go runtime's (a panic, a fatal error, a fatal signal, its own
// complaints), the race detector's, and this library's own in a child
// (procman.Serve, the task package's child loop).
var crashStarts = [][]byte{
	[]byte("panic: "),
	[]byte("fatal error: "),
	[]byte("runtime: "),
	[]byte("runtime/cgo: "),
	[]byte("unexpected fault address"),
	[]byte("signal arrived during cgo execution"),
	[]byte("WARNING: DATA RACE"),
	[]byte("procrastinate: child "),
}

// crashStart reports whether l begins a crash report: it begins as one of
// crashStarts, or as the runtime's line for a fatal signal
// ("SIGSEGV: segmentation violation", "SIGABRT: abort"), or it is the race
// detector's runtime (ThreadSanitizer) speaking.
func crashStart(l []byte) bool {
	for _, s := range crashStarts {
		if bytes.HasPrefix(l, s) {
			return true
		}
	}
	if bytes.HasPrefix(l, []byte("SIG")) {
		name, _, ok := bytes.Cut(l, []byte(": "))
		if ok && len(name) > 3 && isUpper(name[3:]) {
			return true
		}
	}
	return bytes.Contains(l, []byte("ThreadSanitizer"))
}

func isUpper(b []byte) bool {
	for _, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// goroutineHeader reports whether l heads a goroutine's stack in a Go
// traceback: "goroutine 7 [running]:", or with GOTRACEBACK=system
// "goroutine 7 gp=0x... m=... [running]:".
func goroutineHeader(l []byte) bool {
	rest, ok := bytes.CutPrefix(l, []byte("goroutine "))
	if !ok || !bytes.HasSuffix(l, []byte("]:")) {
		return false
	}
	num, rest, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(num) == 0 {
		return false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return false
		}
	}
	return bytes.HasPrefix(rest, []byte("[")) || bytes.Contains(rest, []byte(" ["))
}
