package task

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/procrastinate-go/procrastinate/internal/codec"
)

// Codec turns arguments and results into bytes and back. [JSON] is the
// default; the package gobcodec offers encoding/gob, and any other
// implementation will do. A Codec must be usable from several goroutines
// at once, and the parent and its children must use the same one for a
// task: the one its Define gives.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
	// Name labels the codec in errors.
	Name() string
}

// JSON is the default Codec: encoding/json, with two short cuts. A
// []byte (the exact type) is passed as it is: its bytes are the payload,
// and Unmarshal into a *[]byte keeps data without a copy. A bool, an
// integer, a float or a string (the exact types, not named types over
// them) is written in a short form of a few bytes, which decodes only
// into the type it was made from. Everything else is a JSON text, with
// what encoding/json leaves out and refuses: unexported fields are not
// sent, and Define refuses a type with a chan, a func, a complex number or
// a map key that is not a string, an integer or a TextMarshaler in it.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error) {
	// A []byte travels as it is: no encoder, no copy. A 64 MiB result
	// then costs one trip through the pipe, not three copies.
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	if b, ok := codec.MarshalScalar(v); ok {
		return b, nil
	}
	return json.Marshal(v)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	if p, ok := v.(*[]byte); ok {
		*p = data
		return nil
	}
	if len(data) > 0 && data[0] == codec.Mark {
		if err := codec.UnmarshalScalar(data, v); err != nil {
			return fmt.Errorf("json: %w", err)
		}
		return nil
	}
	return json.Unmarshal(data, v)
}

func (jsonCodec) Name() string { return "json" }

// CheckType returns why encoding/json can never carry a value of type t.
func (jsonCodec) CheckType(t reflect.Type, _ codec.Own) error {
	if why := jsonRefusal(t, map[reflect.Type]bool{}); why != "" {
		return fmt.Errorf("%s", why)
	}
	return nil
}

// Option configures a task definition.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	codec Codec
}

// WithCodec encodes the task's argument and result with c instead of
// [JSON].
func WithCodec(c Codec) Option {
	return optionFunc(func(cfg *config) { cfg.codec = c })
}
