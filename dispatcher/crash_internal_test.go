package dispatcher

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// crashScan finds the cause and the crashing goroutine's stack in the
// crash reports that the Go runtime, the race detector and this library
// write, in the shapes they have.
func TestCrashScanFindsTheCause(t *testing.T) {
	for _, tc := range []struct {
		name, stderr string
		cause, stack string
	}{
		{
			name:   "a panic in a goroutine",
			stderr: "panic: boom\n\ngoroutine 7 [running]:\nmain.f(...)\n\t/x.go:3 +0x1\ncreated by main.g in goroutine 1\n\t/x.go:9 +0x2\n",
			cause:  "panic: boom",
			stack:  "goroutine 7 [running]:\nmain.f(...)\n\t/x.go:3 +0x1\ncreated by main.g in goroutine 1\n\t/x.go:9 +0x2",
		},
		{
			name:   "a panic whose message spans lines",
			stderr: "panic: first line\nsecond line\n\ngoroutine 7 [running]:\nmain.f()\n",
			cause:  "panic: first line\nsecond line",
			stack:  "goroutine 7 [running]:\nmain.f()",
		},
		{
			name:   "a panic during a panic",
			stderr: "panic: first [recovered]\n\tpanic: second\n\ngoroutine 1 [running]:\nmain.main()\n",
			cause:  "panic: first [recovered]\n\tpanic: second",
			stack:  "goroutine 1 [running]:\nmain.main()",
		},
		{
			name:   "a nil dereference",
			stderr: "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47e0b7]\n\ngoroutine 6 [running]:\nmain.h()\n",
			cause:  "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47e0b7]",
			stack:  "goroutine 6 [running]:\nmain.h()",
		},
		{
			name: "out of memory",
			stderr: "runtime: out of memory: cannot allocate 4294967296-byte block (3997696 in use)\nfatal error: out of memory\n\n" +
				"runtime stack:\nruntime.throw({0x4b1f4a?, 0x0?})\n\n" +
				"goroutine 1 gp=0xc000002380 m=0 mp=0x5a1b20 [running]:\nruntime.systemstack_switch()\n\n" +
				"goroutine 2 gp=0xc000002e00 m=nil [force gc (idle)]:\nruntime.gopark()\n",
			cause: "runtime: out of memory: cannot allocate 4294967296-byte block (3997696 in use)\nfatal error: out of memory",
			stack: "goroutine 1 gp=0xc000002380 m=0 mp=0x5a1b20 [running]:\nruntime.systemstack_switch()",
		},
		{
			name:   "a stack overflow",
			stderr: "runtime: goroutine stack exceeds 1000000000-byte limit\nruntime: sp=0xc020160398 stack=[0xc020160000, 0xc040160000]\nfatal error: stack overflow\n\nruntime stack:\nruntime.throw()\n\ngoroutine 1 [running]:\nmain.f()\n...additional frames elided...\n",
			cause:  "runtime: goroutine stack exceeds 1000000000-byte limit\nruntime: sp=0xc020160398 stack=[0xc020160000, 0xc040160000]\nfatal error: stack overflow",
			stack:  "goroutine 1 [running]:\nmain.f()\n...additional frames elided...",
		},
		{
			name:   "a fault in cgo code",
			stderr: "SIGSEGV: segmentation violation\nPC=0x4a5c8e m=0 sigcode=1 addr=0x0\nsignal arrived during cgo execution\n\ngoroutine 1 gp=0xc000002380 m=0 mp=0x555d40 [syscall]:\nruntime.cgocall()\n",
			cause:  "SIGSEGV: segmentation violation\nPC=0x4a5c8e m=0 sigcode=1 addr=0x0\nsignal arrived during cgo execution",
			stack:  "goroutine 1 gp=0xc000002380 m=0 mp=0x555d40 [syscall]:\nruntime.cgocall()",
		},
		{
			name:   "a thread that cgo could not start",
			stderr: "runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\nPC=0x7f3c1 m=3 sigcode=18446744073709551610\n\ngoroutine 0 gp=0x0 m=3 mp=0xc000100008 [idle]:\n",
			cause:  "runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\nPC=0x7f3c1 m=3 sigcode=18446744073709551610",
			stack:  "goroutine 0 gp=0x0 m=3 mp=0xc000100008 [idle]:",
		},
		{
			name:   "an unexpected fault address",
			stderr: "unexpected fault address 0x7f0000000000\nfatal error: fault\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x7f0000000000 pc=0x45d9a1]\n\ngoroutine 5 [running]:\nruntime.throw()\n",
			cause:  "unexpected fault address 0x7f0000000000\nfatal error: fault\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x7f0000000000 pc=0x45d9a1]",
			stack:  "goroutine 5 [running]:\nruntime.throw()",
		},
		{
			name: "the last of two data races",
			stderr: "==================\nWARNING: DATA RACE\nWrite at 0x00c00001c0f8 by goroutine 8:\n  main.main.func1()\n\nPrevious write at 0x00c00001c0f8 by main goroutine:\n  main.main()\n\nGoroutine 8 (running) created at:\n  main.main()\n==================\n" +
				"==================\nWARNING: DATA RACE\nRead at 0x00c00001c100 by goroutine 9:\n  main.main.func2()\n\n==================\nFound 2 data race(s)\n",
			cause: "WARNING: DATA RACE\nRead at 0x00c00001c100 by goroutine 9:\n  main.main.func2()",
		},
		{
			name:   "the race detector out of memory",
			stderr: "==4321==ERROR: ThreadSanitizer failed to allocate 0x1000 (4096) bytes at address 0x7b0400000000 (errno: 12)\n",
			cause:  "==4321==ERROR: ThreadSanitizer failed to allocate 0x1000 (4096) bytes at address 0x7b0400000000 (errno: 12)",
		},
		{
			name:   "this library's own line",
			stderr: "working\nprocrastinate: child 12: CPU time limit exceeded (SIGXCPU)\nmore output\n",
			cause:  "procrastinate: child 12: CPU time limit exceeded (SIGXCPU)",
		},
		{
			name:   "a line that looks like a panic, then a crash",
			stderr: "panic: only a log line\n\nnormal output\nfatal error: sync: unlock of unlocked mutex\n\ngoroutine 1 [running]:\nsync.fatal()\n",
			cause:  "fatal error: sync: unlock of unlocked mutex",
			stack:  "goroutine 1 [running]:\nsync.fatal()",
		},
		{
			name:   "a grandchild's crash, passed on with its prefix",
			stderr: "[sub.task 55] panic: boom\n[sub.task 55] \n[sub.task 55] goroutine 7 [running]:\n",
		},
		{
			name:   "no crash",
			stderr: "hello\nworld\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s crashScan
			for _, l := range strings.Split(strings.TrimSuffix(tc.stderr, "\n"), "\n") {
				s.line([]byte(l))
			}
			cause, stack := s.results()
			require.Equal(t, tc.cause, cause, "the cause")
			require.Equal(t, tc.stack, stack, "the stack")
		})
	}
}

// A cause is kept to its first lines, and a stack to its first bytes.
func TestCrashScanIsBounded(t *testing.T) {
	var s crashScan
	s.line([]byte("panic: boom"))
	for range 1000 {
		s.line([]byte("more of the message"))
	}
	s.line(nil)
	s.line([]byte("goroutine 7 [running]:"))
	for range 10000 {
		s.line([]byte("main.f()"))
	}
	cause, stack := s.results()
	require.True(t, strings.HasPrefix(cause, "panic: boom\nmore of the message\n"), "cause %q", cause[:min(len(cause), 100)])
	require.LessOrEqual(t, strings.Count(cause, "\n")+1, maxCauseLines, "lines in the cause")
	require.LessOrEqual(t, len(stack), maxStack, "bytes in the stack")
	require.True(t, strings.HasPrefix(stack, "goroutine 7 [running]:\nmain.f()\n"), "stack %q", stack[:min(len(stack), 100)])
}
