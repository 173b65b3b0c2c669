package procman

import (
	"fmt"
	"strings"
)

// envKey returns the name that kv, an environment entry, sets.
func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// CheckEnv reports what is wrong with env as extra entries for a child's
// environment (Spec.Env), or nil: each entry must be KEY=VALUE with a
// KEY, no entry may hold a NUL byte, and none may set a variable that the
// manager sets itself (PROCRASTINATE_CHILD, PROCRASTINATE_CPU_LIMIT,
// PROCRASTINATE_NICE). CreateProcess refuses a Spec whose Env fails it; a
// caller may check sooner.
func CheckEnv(env []string) error {
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("entry %q is not KEY=VALUE", kv)
		case strings.IndexByte(kv, 0) >= 0:
			return fmt.Errorf("entry for %s holds a NUL byte", k)
		case reservedEnv(k):
			return fmt.Errorf("%s is set by the manager itself; leave it out", k)
		}
	}
	return nil
}

// reservedEnv reports whether key is one of the variables that the manager
// sets in a child's environment itself.
func reservedEnv(key string) bool {
	return key == cookieKey || key == cpuLimitKey || key == niceKey
}
