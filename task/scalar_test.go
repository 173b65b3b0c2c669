package task_test

import (
	"bytes"
	"encoding/gob"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/task"
)

// gobScalar round-trips v through task.Gob and checks that it took the
// short form (a few bytes, no gob stream) and came back equal.
func gobScalar[T comparable](t *testing.T, v T) {
	t.Helper()
	data, err := task.Gob.Marshal(v)
	require.NoError(t, err)
	require.NotEmpty(t, data)
	assert.Equal(t, byte(0), data[0], "%T %v: the short form starts with a zero byte", v, v)
	assert.LessOrEqual(t, len(data), 12, "%T %v: the kind and at most ten bytes of varint", v, v)
	var got T
	require.NoError(t, task.Gob.Unmarshal(data, &got))
	assert.Equal(t, v, got)
}

func TestGobShortFormRoundTrips(t *testing.T) {
	gobScalar(t, true)
	gobScalar(t, false)
	for _, x := range []int{0, 1, -1, math.MaxInt, math.MinInt} {
		gobScalar(t, x)
	}
	gobScalar(t, int8(math.MinInt8))
	gobScalar(t, int8(math.MaxInt8))
	gobScalar(t, int16(math.MinInt16))
	gobScalar(t, int32(math.MaxInt32))
	gobScalar(t, int64(math.MinInt64))
	gobScalar(t, uint(math.MaxUint))
	gobScalar(t, uint8(255))
	gobScalar(t, uint16(math.MaxUint16))
	gobScalar(t, uint32(math.MaxUint32))
	gobScalar(t, uint64(math.MaxUint64))
	gobScalar(t, float32(-1.5))
	gobScalar(t, float32(math.MaxFloat32))
	gobScalar(t, math.SmallestNonzeroFloat64)
	gobScalar(t, math.Inf(-1))
	gobScalar(t, 0.1)

	// NaN is not equal to itself: compare the bits.
	data, err := task.Gob.Marshal(math.NaN())
	require.NoError(t, err)
	var f float64
	require.NoError(t, task.Gob.Unmarshal(data, &f))
	assert.Equal(t, math.Float64bits(math.NaN()), math.Float64bits(f))

	// Strings: empty, with a zero byte, not UTF-8, long.
	for _, s := range []string{"", "a\x00b", "\xff\xfe", "héllo", string(bytes.Repeat([]byte("x"), 1<<16))} {
		data, err := task.Gob.Marshal(s)
		require.NoError(t, err)
		assert.Len(t, data, 2+len(s), "a string is its bytes behind two")
		var got string
		require.NoError(t, task.Gob.Unmarshal(data, &got))
		assert.Equal(t, s, got)
	}
}

// Named types over scalars, and everything else, still go through gob:
// their gob streams never start with a zero byte.
func TestGobShortFormOnlyForExactTypes(t *testing.T) {
	for _, v := range []any{time.Second, struct{ N int }{7}, []int{1}} {
		data, err := task.Gob.Marshal(v)
		require.NoError(t, err)
		require.NotEmpty(t, data)
		assert.NotEqual(t, byte(0), data[0], "%T goes through gob", v)
	}
	data, err := task.Gob.Marshal(time.Second)
	require.NoError(t, err)
	var d time.Duration
	require.NoError(t, task.Gob.Unmarshal(data, &d))
	assert.Equal(t, time.Second, d)
}

// A gob stream of a scalar, made by encoding/gob itself, still decodes:
// Unmarshal takes both forms.
func TestGobUnmarshalTakesAGobStreamOfAScalar(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, gob.NewEncoder(&buf).Encode(-12345))
	var n int
	require.NoError(t, task.Gob.Unmarshal(buf.Bytes(), &n))
	assert.Equal(t, -12345, n)

	buf.Reset()
	require.NoError(t, gob.NewEncoder(&buf).Encode("from gob"))
	var s string
	require.NoError(t, task.Gob.Unmarshal(buf.Bytes(), &s))
	assert.Equal(t, "from gob", s)
}

// Every malformed value in the short form is an error, never a panic or a
// wrong value.
func TestGobShortFormBadInput(t *testing.T) {
	intOf := func(t *testing.T, data []byte) error {
		var n int
		return task.Gob.Unmarshal(data, &n)
	}
	int8Of := func(t *testing.T, data []byte) error {
		var n int8
		return task.Gob.Unmarshal(data, &n)
	}
	uint16Of := func(t *testing.T, data []byte) error {
		var n uint16
		return task.Gob.Unmarshal(data, &n)
	}
	boolOf := func(t *testing.T, data []byte) error {
		var b bool
		return task.Gob.Unmarshal(data, &b)
	}
	floatOf := func(t *testing.T, data []byte) error {
		var f float64
		return task.Gob.Unmarshal(data, &f)
	}
	structOf := func(t *testing.T, data []byte) error {
		var v struct{ N int }
		return task.Gob.Unmarshal(data, &v)
	}
	short := func(v any) []byte {
		data, err := task.Gob.Marshal(v)
		require.NoError(t, err)
		return data
	}
	cases := []struct {
		name   string
		decode func(*testing.T, []byte) error
		data   []byte
		want   string
	}{
		{"the mark alone", intOf, []byte{0}, "not a value in the short form"},
		{"no varint", intOf, []byte{0, 2}, "not a int in the short form"},
		{"a varint cut short", intOf, []byte{0, 2, 0x80}, "not a int in the short form"},
		{"trailing bytes", intOf, append(short(5), 0), "not a int in the short form"},
		{"another kind", intOf, short(int64(5)), "a int64 in the short form cannot be decoded into a int"},
		{"a string as an int", intOf, short("5"), "a string in the short form cannot be decoded into a int"},
		{"too large for int8", int8Of, []byte{0, 3, 0x80, 0x02}, "not a int8 in the short form"},
		{"too large for uint16", uint16Of, []byte{0, 9, 0x80, 0x80, 0x04}, "not a uint16 in the short form"},
		{"a bool of 2", boolOf, []byte{0, 1, 2}, "not a bool in the short form"},
		{"a bool of no byte", boolOf, []byte{0, 1}, "not a bool in the short form"},
		{"a float of 7 bytes", floatOf, []byte{0, 14, 1, 2, 3, 4, 5, 6, 7}, "not a float64 in the short form"},
		{"short form into a struct", structOf, short(5), "gob: a int in the short form cannot be decoded into a *struct { N int }"},
		{"the mark alone into a struct", structOf, []byte{0}, "gob: nothing in the short form cannot be decoded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.decode(t, c.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}
