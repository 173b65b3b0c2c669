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
	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

// codecs are the module's codecs, which share the short form of scalars.
var codecs = []task.Codec{task.JSON, gobcodec.Codec}

// shortForm round-trips v through c and checks that it took the short
// form (a few bytes, no gob stream or JSON text) and came back equal.
func shortForm[T comparable](t *testing.T, c task.Codec, v T) {
	t.Helper()
	data, err := c.Marshal(v)
	require.NoError(t, err)
	require.NotEmpty(t, data)
	assert.Equal(t, byte(0), data[0], "%T %v: the short form starts with a zero byte", v, v)
	assert.LessOrEqual(t, len(data), 12, "%T %v: the kind and at most ten bytes of varint", v, v)
	var got T
	require.NoError(t, c.Unmarshal(data, &got))
	assert.Equal(t, v, got)
}

func TestShortFormRoundTrips(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) { shortFormRoundTrips(t, c) })
	}
}

func shortFormRoundTrips(t *testing.T, c task.Codec) {
	check := func(t *testing.T, v any) {
		t.Helper()
		switch v := v.(type) {
		case bool:
			shortForm(t, c, v)
		case int:
			shortForm(t, c, v)
		case int8:
			shortForm(t, c, v)
		case int16:
			shortForm(t, c, v)
		case int32:
			shortForm(t, c, v)
		case int64:
			shortForm(t, c, v)
		case uint:
			shortForm(t, c, v)
		case uint8:
			shortForm(t, c, v)
		case uint16:
			shortForm(t, c, v)
		case uint32:
			shortForm(t, c, v)
		case uint64:
			shortForm(t, c, v)
		case float32:
			shortForm(t, c, v)
		case float64:
			shortForm(t, c, v)
		default:
			t.Fatalf("no case for %T", v)
		}
	}
	check(t, true)
	check(t, false)
	for _, x := range []int{0, 1, -1, math.MaxInt, math.MinInt} {
		check(t, x)
	}
	check(t, int8(math.MinInt8))
	check(t, int8(math.MaxInt8))
	check(t, int16(math.MinInt16))
	check(t, int32(math.MaxInt32))
	check(t, int64(math.MinInt64))
	check(t, uint(math.MaxUint))
	check(t, uint8(255))
	check(t, uint16(math.MaxUint16))
	check(t, uint32(math.MaxUint32))
	check(t, uint64(math.MaxUint64))
	check(t, float32(-1.5))
	check(t, float32(math.MaxFloat32))
	check(t, math.SmallestNonzeroFloat64)
	check(t, math.Inf(-1))
	check(t, 0.1)

	// NaN is not equal to itself: compare the bits.
	data, err := c.Marshal(math.NaN())
	require.NoError(t, err)
	var f float64
	require.NoError(t, c.Unmarshal(data, &f))
	assert.Equal(t, math.Float64bits(math.NaN()), math.Float64bits(f))

	// Strings: empty, with a zero byte, not UTF-8, long.
	for _, s := range []string{"", "a\x00b", "\xff\xfe", "héllo", string(bytes.Repeat([]byte("x"), 1<<16))} {
		data, err := c.Marshal(s)
		require.NoError(t, err)
		assert.Len(t, data, 2+len(s), "a string is its bytes behind two")
		var got string
		require.NoError(t, c.Unmarshal(data, &got))
		assert.Equal(t, s, got)
	}
}

// Named types over scalars, and everything else, still go through the
// codec: gob streams and JSON texts never start with a zero byte.
func TestShortFormOnlyForExactTypes(t *testing.T) {
	for _, c := range codecs {
		for _, v := range []any{time.Second, struct{ N int }{7}, []int{1}} {
			data, err := c.Marshal(v)
			require.NoError(t, err)
			require.NotEmpty(t, data)
			assert.NotEqual(t, byte(0), data[0], "%T goes through %s", v, c.Name())
		}
		data, err := c.Marshal(time.Second)
		require.NoError(t, err)
		var d time.Duration
		require.NoError(t, c.Unmarshal(data, &d))
		assert.Equal(t, time.Second, d, c.Name())
	}
}

// A JSON text of a scalar still decodes: Unmarshal takes both forms.
func TestJSONUnmarshalTakesAJSONTextOfAScalar(t *testing.T) {
	var n int
	require.NoError(t, task.JSON.Unmarshal([]byte("-12345"), &n))
	assert.Equal(t, -12345, n)
	var s string
	require.NoError(t, task.JSON.Unmarshal([]byte(`"from json"`), &s))
	assert.Equal(t, "from json", s)
}

// A gob stream of a scalar, made by encoding/gob itself, still decodes:
// Unmarshal takes both forms.
func TestGobcodecUnmarshalTakesAGobStreamOfAScalar(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, gob.NewEncoder(&buf).Encode(-12345))
	var n int
	require.NoError(t, gobcodec.Codec.Unmarshal(buf.Bytes(), &n))
	assert.Equal(t, -12345, n)

	buf.Reset()
	require.NoError(t, gob.NewEncoder(&buf).Encode("from gob"))
	var s string
	require.NoError(t, gobcodec.Codec.Unmarshal(buf.Bytes(), &s))
	assert.Equal(t, "from gob", s)
}

// Every malformed value in the short form is an error, never a panic or a
// wrong value.
func TestShortFormBadInput(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) { shortFormBadInput(t, c) })
	}
}

func shortFormBadInput(t *testing.T, c task.Codec) {
	intOf := func(t *testing.T, data []byte) error {
		var n int
		return c.Unmarshal(data, &n)
	}
	int8Of := func(t *testing.T, data []byte) error {
		var n int8
		return c.Unmarshal(data, &n)
	}
	uint16Of := func(t *testing.T, data []byte) error {
		var n uint16
		return c.Unmarshal(data, &n)
	}
	boolOf := func(t *testing.T, data []byte) error {
		var b bool
		return c.Unmarshal(data, &b)
	}
	floatOf := func(t *testing.T, data []byte) error {
		var f float64
		return c.Unmarshal(data, &f)
	}
	structOf := func(t *testing.T, data []byte) error {
		var v struct{ N int }
		return c.Unmarshal(data, &v)
	}
	short := func(v any) []byte {
		data, err := c.Marshal(v)
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
		{"short form into a struct", structOf, short(5), c.Name() + ": a int in the short form cannot be decoded into a *struct { N int }"},
		{"the mark alone into a struct", structOf, []byte{0}, c.Name() + ": nothing in the short form cannot be decoded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(t, tc.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
