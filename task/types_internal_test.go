package task

import (
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

type plain struct {
	N    int
	Tags []string
	M    map[string]*plain
}

type list struct {
	Err  error
	Next *list
}

type hidden struct{ Err error }

type embedsHidden struct {
	hidden
	Err error
}

type upperCodec struct{ Codec }

// A type with no error in it goes to the codec as it is: no shadow, no
// conversion per call. So does a type with errors that cannot be
// shadowed, and any type with a codec other than the module's own.
func TestCrossingOnlyWhereErrorsAre(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec Codec
		t     reflect.Type
		want  bool
	}{
		{"int", JSON, reflect.TypeFor[int](), false},
		{"plain struct", JSON, reflect.TypeFor[plain](), false},
		{"plain struct, json", JSON, reflect.TypeFor[plain](), false},
		{"error", JSON, reflect.TypeFor[error](), true},
		{"[]error, json", JSON, reflect.TypeFor[[]error](), true},
		{"map of errors", JSON, reflect.TypeFor[map[int]error](), true},
		{"error, another codec", upperCodec{JSON}, reflect.TypeFor[error](), false},
		{"recursive with an error", JSON, reflect.TypeFor[list](), false},
		{"unexported embedded struct beside an error", JSON, reflect.TypeFor[embedsHidden](), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := crossingFor(tc.codec, tc.t)
			require.Equal(t, tc.want, c != nil, "crossingFor(%s, %s) = %v", tc.codec.Name(), tc.t, c)
		})
	}
}

// An error that crossed keeps its message, and a nil one stays nil.
func TestCrossingRoundTrip(t *testing.T) {
	for _, codec := range []Codec{JSON} {
		c := crossingFor(codec, reflect.TypeFor[[2]error]())
		require.NotNil(t, c)
		in := [2]error{errors.New("first"), nil}
		data, err := codec.Marshal(c.encode(reflect.ValueOf(&in).Elem()))
		require.NoError(t, err, codec.Name())
		var out [2]error
		require.NoError(t, c.decode(codec, data, reflect.ValueOf(&out)), codec.Name())
		require.EqualError(t, out[0], "first", codec.Name())
		require.True(t, out[1] == nil, "%s: out[1] = %#v; want nil", codec.Name(), out[1])
	}
}

type withErr struct {
	N   int
	Err error
}

// BenchmarkEncodeResult: a result with no error in it goes to the codec as
// it is; one with an error field pays for its shadow.
func BenchmarkEncodeResult(b *testing.B) {
	plainDef := &Def[int, plain]{codec: JSON, res: crossingFor(JSON, reflect.TypeFor[plain]())}
	errDef := &Def[int, withErr]{codec: JSON, res: crossingFor(JSON, reflect.TypeFor[withErr]())}
	b.Run("plain", func(b *testing.B) {
		v := plain{N: 7, Tags: []string{"a"}}
		for b.Loop() {
			if _, err := plainDef.encodeResult(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("with a nil error", func(b *testing.B) {
		v := withErr{N: 7}
		for b.Loop() {
			if _, err := errDef.encodeResult(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("with an error", func(b *testing.B) {
		v := withErr{N: 7, Err: errors.New("broke")}
		for b.Loop() {
			if _, err := errDef.encodeResult(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
