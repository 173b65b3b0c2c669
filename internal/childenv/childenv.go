// Package childenv holds the environment variables by which a process
// manager's child knows what it is, and the check of the extra entries a
// caller gives a child.
package childenv

import (
	"fmt"
	"os"
	"strings"
)

// The variables the manager sets in a child's environment.
const (
	// Cookie marks a process as a child of a Manager. Its value names the
	// protocol version, so that an executable from another version
	// refuses to run as a child instead of misreading the pipes.
	Cookie = "PROCRASTINATE_CHILD"
	// CPULimit says that the parent sets a CPU time limit on the child
	// before its first invocation.
	CPULimit = "PROCRASTINATE_CPU_LIMIT"
	// Nice holds the nice level that the parent sets on the child's
	// process group before its first invocation.
	Nice = "PROCRASTINATE_NICE"
	// Rlimits holds the resource limits that the child sets on itself as
	// it starts, where the parent cannot set them on another process.
	Rlimits = "PROCRASTINATE_RLIMITS"
)

// IsChild reports whether this process was started as a child by a
// Manager and has not yet been served (Serve removes the mark).
func IsChild() bool {
	_, ok := os.LookupEnv(Cookie)
	return ok
}

// Reserved reports whether key is one of the variables that the manager
// sets in a child's environment itself.
func Reserved(key string) bool {
	return key == Cookie || key == CPULimit || key == Nice || key == Rlimits
}

// Check reports what is wrong with env as extra entries for a child's
// environment, or nil: each entry must be KEY=VALUE with a KEY, no entry
// may hold a NUL byte, and none may set a variable that the manager sets
// itself.
func Check(env []string) error {
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("entry %q is not KEY=VALUE", kv)
		case strings.IndexByte(kv, 0) >= 0:
			return fmt.Errorf("entry for %s holds a NUL byte", k)
		case Reserved(k):
			return fmt.Errorf("%s is set by the manager itself; leave it out", k)
		}
	}
	return nil
}
