package dispatcher

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/strategy"
)

// Spread varies each child's task limit and age within the fraction, so
// that children started together are not replaced together.
func TestSpreadVariesLimitsAndAges(t *testing.T) {
	d := &Dispatcher{policy: strategy.Policy{Reuse: 100, MaxAge: time.Minute, Spread: 0.2}}
	start := time.Now()
	limits := map[int]bool{}
	for range 200 {
		c := d.newChild(false)
		require.GreaterOrEqual(t, c.limit, 80)
		require.LessOrEqual(t, c.limit, 120)
		age := c.oldAt.Sub(start)
		require.Greater(t, age, 47*time.Second)
		require.Less(t, age, 73*time.Second+time.Since(start))
		limits[c.limit] = true
	}
	require.Greater(t, len(limits), 10, "limits spread over the range")

	d.policy.Spread = 0
	require.Equal(t, 100, d.newChild(false).limit, "no spread, no change")
	require.Equal(t, 1, d.newChild(true).limit, "a child of its own serves one task")
	d.policy.Reuse = strategy.Unlimited
	require.Equal(t, -1, d.newChild(false).limit, "Reuse(Unlimited): no limit")
}
