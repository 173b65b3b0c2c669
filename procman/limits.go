package procman

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/procrastinate-go/procrastinate/internal/childenv"
)

// rlimitsKey, set in a child's environment by a manager that cannot set
// resource limits on another process (the portable backend: prlimit is
// Linux's), holds Spec.Rlimits for the child to set on itself as it
// starts, before it reads anything: "resource:cur:max", comma-separated.
const rlimitsKey = childenv.Rlimits

// decodeRlimits reads a value of rlimitsKey.
func decodeRlimits(s string) ([]Rlimit, error) {
	if s == "" {
		return nil, nil
	}
	var out []Rlimit
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s entry %q is not resource:cur:max", rlimitsKey, f)
		}
		res, err1 := strconv.Atoi(parts[0])
		cur, err2 := strconv.ParseUint(parts[1], 10, 64)
		lim, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s entry %q is not resource:cur:max", rlimitsKey, f)
		}
		out = append(out, Rlimit{Resource: res, Cur: cur, Max: lim})
	}
	return out, nil
}
