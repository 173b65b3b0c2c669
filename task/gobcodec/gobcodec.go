// Package gobcodec offers encoding/gob as a task codec:
//
//	var resize = task.Define("example.com/thumbs.resize", resizeImage, task.WithCodec(gobcodec.Codec))
//
// It is a package of its own so that a program that does not ask for gob
// does not link it: every child process of a program starts the whole
// program again, and pays for the initialisation of every package it
// links, encoding/gob's among them.
package gobcodec

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"

	"github.com/procrastinate-go/procrastinate/internal/codec"
	"github.com/procrastinate-go/procrastinate/task"
)

// Codec is encoding/gob, one self-describing stream per value, with the
// short cuts of task.JSON: a []byte (the exact type) is passed as it is,
// and a bool, an integer, a float or a string (the exact types) is written
// in a short form of a few bytes. Unmarshal still takes a gob stream for
// those types.
//
// Gob encodes most Go values, including structs with exported fields,
// maps and slices, and complex numbers and maps with any comparable key,
// which JSON cannot; interface values in fields need gob.Register. A nil
// pointer cannot be encoded as the whole value: Marshal returns an error
// for it (where gob itself would panic). task.Define, given this codec,
// refuses a type that gob can never carry: an interface type such as any
// as the whole argument or result, a chan, a func or an unsafe.Pointer
// anywhere gob would encode it, or a struct with fields of which none is
// exported.
var Codec task.Codec = gobCodec{}

type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	if b, ok := codec.MarshalScalar(v); ok {
		return b, nil
	}
	// gob panics on a nil pointer instead of returning an error. Make it
	// an error, so that Schedule fails the future instead of crashing the
	// caller, and a task that returns a nil pointer fails as "encoding the
	// result" instead of being reported as a panic of the task.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil, fmt.Errorf("gob: cannot encode nil pointer of type %s", rv.Type())
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (gobCodec) Unmarshal(data []byte, v any) error {
	if p, ok := v.(*[]byte); ok {
		*p = data
		return nil
	}
	if len(data) > 0 && data[0] == codec.Mark {
		if err := codec.UnmarshalScalar(data, v); err != nil {
			return fmt.Errorf("gob: %w", err)
		}
		return nil
	}
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

func (gobCodec) Name() string { return "gob" }

// CheckType returns why gob can never carry a value of type t.
func (gobCodec) CheckType(t reflect.Type, _ codec.Own) error {
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if base.Kind() == reflect.Interface {
		return fmt.Errorf("gob cannot carry a value of interface type %s as the whole argument or result: it encodes the value inside, which the other side cannot decode back into the interface. Use a concrete type, or a struct with the interface in a field (and gob.Register the types it may hold), or the default codec, task.JSON", codec.TypeName(t))
	}
	if why := refusal(t, map[reflect.Type]bool{}); why != "" {
		return fmt.Errorf("%s", why)
	}
	return nil
}

// refusal is CheckType below the top level: gob leaves out unexported
// fields, and chan and func fields (and pointers to them), as it does; a
// chan, a func or an unsafe.Pointer anywhere else, and a struct with
// fields of which none is sent, it can never encode. A type with its own
// GobEncode or MarshalBinary method is its own business.
func refusal(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	if codec.Implements(t, codec.GobEncoder, codec.BinaryMarshaler) {
		return ""
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return codec.CannotCross(t)
	case reflect.Pointer, reflect.Slice, reflect.Array:
		if why := refusal(t.Elem(), seen); why != "" {
			return why
		}
	case reflect.Map:
		if why := refusal(t.Key(), seen); why != "" {
			return why
		}
		return refusal(t.Elem(), seen)
	case reflect.Struct:
		sent := 0
		for i := range t.NumField() {
			f := t.Field(i)
			if !sends(f) {
				continue
			}
			sent++
			if why := refusal(f.Type, seen); why != "" {
				return fmt.Sprintf("in field %s of %s: %s", f.Name, t, why)
			}
		}
		if t.NumField() > 0 && sent == 0 {
			return fmt.Sprintf("gob encodes exported fields only, and no chan or func ones, and %s has no exported fields it can encode: export them, or give it GobEncode and GobDecode (or MarshalBinary and UnmarshalBinary) methods, or use the default codec, task.JSON, and json methods", t)
		}
	}
	return ""
}

// sends reports whether gob encodes field f (encoding/gob's isSent).
func sends(f reflect.StructField) bool {
	if !f.IsExported() {
		return false
	}
	t := f.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() != reflect.Chan && t.Kind() != reflect.Func
}
