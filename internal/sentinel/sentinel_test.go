package sentinel

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNamesListsEachSentinelInTheChainOnce(t *testing.T) {
	a := New("pkg.ErrA", "pkg: a")
	b := Wrap("pkg.ErrB", a, "b")
	c := New("pkg.ErrC", "pkg: c")
	require.Equal(t, "pkg: a: b", b.Error())
	require.ErrorIs(t, b, a, "Wrap wraps its parent")

	err := fmt.Errorf("outer: %w", errors.Join(errors.New("plain"), fmt.Errorf("mid: %w", b), a))
	require.Equal(t, []string{"pkg.ErrB", "pkg.ErrA"}, Names(err), "each once, in the order found")
	require.Empty(t, Names(errors.New("plain")))
	require.Empty(t, Names(nil))

	require.True(t, Named(a, Names(err)))
	require.False(t, Named(c, Names(err)), "a sentinel that is not in the chain")
	require.False(t, Named(errors.New("pkg: a"), Names(err)), "an error that is not a sentinel, whatever its message")
}
