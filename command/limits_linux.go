package command

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// addNice adds n to the nice level of the calling thread, which a
// thread's children inherit on Linux.
func addNice(n int) error {
	tid := unix.Gettid()
	cur, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	return unix.Setpriority(unix.PRIO_PROCESS, tid, 20-cur+n) // the system call gives 20 - nice
}

// setAddressSpace sets RLIMIT_AS to n bytes with a raw system call: past
// the limit, the runtime (and the race detector's) may not map more
// memory, and nothing runs between it and the exec.
func setAddressSpace(n uint64) error {
	lim := unix.Rlimit{Cur: n, Max: n}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, unix.RLIMIT_AS, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// prepareExec returns the exec of path with argv and env as a raw system
// call, which allocates nothing; it returns only when that fails.
func prepareExec(path string, argv, env []string) (func() syscall.Errno, error) {
	pathp, err := syscall.BytePtrFromString(path)
	if err != nil {
		return nil, syscall.ENOENT
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return nil, err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return nil, err
	}
	return func() syscall.Errno {
		_, _, e := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(pathp)),
			uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])))
		return e
	}, nil
}
