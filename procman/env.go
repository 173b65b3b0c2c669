package procman

import (
	"os"
	"strconv"
	"strings"

	"github.com/procrastinate-go/procrastinate/internal/childenv"
)

// envKey returns the name that kv, an environment entry, sets.
func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// reservedEnv reports whether key is one of the variables that the
// manager sets in a child's environment itself.
func reservedEnv(key string) bool { return childenv.Reserved(key) }

// childEnv is the parent's environment with the child cookie, the mark of
// a CPU time limit to come when cpuLimit is set, that of the nice level
// when nice is not 0, then extra. A variable that extra sets is set once,
// to its last value in extra: a Go child would take the first of two.
func childEnv(extra []string, cpuLimit bool, nice int) []string {
	env := os.Environ()
	var last map[string]int // the index in extra of the last entry for each of its variables
	if len(extra) > 0 {
		last = make(map[string]int, len(extra))
		for i, kv := range extra {
			last[envKey(kv)] = i
		}
	}
	out := make([]string, 0, len(env)+3+len(extra))
	for _, kv := range env {
		k := envKey(kv)
		if _, set := last[k]; set || reservedEnv(k) {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, cookieKey+"="+cookieValue)
	if cpuLimit {
		out = append(out, cpuLimitKey+"=1")
	}
	if nice != 0 {
		out = append(out, niceKey+"="+strconv.Itoa(nice))
	}
	for i, kv := range extra {
		if last[envKey(kv)] == i {
			out = append(out, kv)
		}
	}
	return out
}
