//go:build unix

package command

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits are applied by a shim: the program's own binary, started in the
// command's place with shimEnv set, applies them in this package's init
// and execs the command, keeping its pid, group and streams. Go cannot
// run code between fork and exec, and limits set on the child that starts
// commands would bind it as well.

const shimEnv = "PROCRASTINATE_COMMAND_LIMITS"

func init() {
	v, ok := syscall.Getenv(shimEnv)
	if !ok {
		return
	}
	os.Exit(shim(v))
}

// throughShim returns the start of the shim that runs path with argv and
// env under l.
func throughShim(path string, argv, env []string, l Limits) (string, []string, []string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, nil, fmt.Errorf("command: the program's own binary, to apply limits: %w", err)
	}
	cpu := int64(0)
	if l.CPUTime > 0 {
		cpu = int64((l.CPUTime + time.Second - 1) / time.Second)
	}
	v := fmt.Sprintf("%d %d %d %s", l.AddressSpace, cpu, l.Nice, path)
	e := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			e = append(e, kv)
		}
	}
	return self, argv, append(e, shimEnv+"="+v), nil
}

// shim applies the limits in v and execs the command; it returns only
// when that fails, with the shell's status.
func shim(v string) int {
	f := strings.SplitN(v, " ", 4)
	if len(f) != 4 {
		fmt.Fprintf(os.Stderr, "procrastinate: command: malformed %s\n", shimEnv)
		return 126
	}
	as, err1 := strconv.ParseUint(f[0], 10, 64)
	cpu, err2 := strconv.ParseUint(f[1], 10, 64)
	nice, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil {
		fmt.Fprintf(os.Stderr, "procrastinate: command: malformed %s\n", shimEnv)
		return 126
	}
	path := f[3]
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env, kv)
		}
	}
	// Everything exec needs is made before the limits are set: past an
	// address-space limit, the runtime (and the race detector's) may not
	// map more memory.
	exec, err := prepareExec(path, os.Args, env)
	if err != nil {
		if err == syscall.ENOENT {
			return 127
		}
		return 126
	}
	// The nice level is a thread's on Linux: set it on the thread that
	// execs.
	runtime.LockOSThread()
	if nice != 0 {
		if err := addNice(nice); err != nil {
			fmt.Fprintf(os.Stderr, "procrastinate: command: setting nice %d: %v\n", nice, err)
			return 126
		}
	}
	if cpu > 0 {
		if err := setRlimit(unix.RLIMIT_CPU, cpu, cpu+1); err != nil {
			fmt.Fprintf(os.Stderr, "procrastinate: command: setting RLIMIT_CPU: %v\n", err)
			return 126
		}
	}
	if as > 0 {
		if err := setAddressSpace(as); err != nil {
			fmt.Fprintf(os.Stderr, "procrastinate: command: setting RLIMIT_AS: %v\n", err)
			return 126
		}
	}
	e := exec()
	fmt.Fprintf(os.Stderr, "procrastinate: command: exec %s: %v\n", path, e)
	if e == syscall.ENOENT {
		return 127
	}
	return 126
}

// setRlimit sets the limit resource to cur, and its hard limit to max.
func setRlimit(resource int, cur, max uint64) error {
	var lim unix.Rlimit
	setTo(&lim.Cur, cur)
	setTo(&lim.Max, max)
	return unix.Setrlimit(resource, &lim)
}

// setTo sets *p to v: an rlimit's fields are signed on some systems.
func setTo[T int64 | uint64](p *T, v uint64) { *p = T(v) }
