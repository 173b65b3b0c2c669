package task

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/procrastinate-go/procrastinate/internal/codec"
	"github.com/procrastinate-go/procrastinate/internal/sentinel"
)

// What the module's own codecs can carry is decided per type, once, when a
// task is defined: checkType finds what they can never encode, and
// crossingFor how a result with errors in it crosses. Types with no error
// in them go to the codec as they are, with no cost per call.

var errorType = reflect.TypeFor[error]()

// checkType returns why codec can never carry a value of type t (the
// task's argument when result is false, its result when it is true), or
// nil when it may. Only the module's own codecs check types; any other
// may carry anything. An error as the whole result is not checked: it
// crosses as a struct (see crossing).
func checkType(c Codec, t reflect.Type, result bool) error {
	ch, ok := c.(codec.Checker)
	if !ok || (result && t == errorType) {
		return nil
	}
	return ch.CheckType(t, codec.Own{})
}

// jsonRefusal is what JSON's CheckType returns, as a string: encoding/json refuses a chan, a
// func, a complex number and an unsafe.Pointer wherever it meets one, and
// a map whose key is not a string, an integer or a TextMarshaler. It
// leaves out unexported fields and fields tagged "-"; a type with its own
// MarshalJSON or MarshalText method is its own business.
func jsonRefusal(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	if codec.Implements(t, codec.JSONMarshaler, codec.TextMarshaler) {
		return ""
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return "json: " + codec.CannotCross(t)
	case reflect.Complex64, reflect.Complex128:
		return fmt.Sprintf("json cannot encode a %s: carry its real and imaginary parts as two floats, or use the gob codec (package gobcodec)", t)
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return jsonRefusal(t.Elem(), seen)
	case reflect.Map:
		switch k := t.Key(); {
		case k.Kind() == reflect.String, k.Kind() >= reflect.Int && k.Kind() <= reflect.Uintptr, codec.Implements(k, codec.TextMarshaler):
		default:
			return fmt.Sprintf("json cannot encode a map key of type %s (in %s): use a string or an integer key, or a key type with a MarshalText method, or the gob codec (package gobcodec)", k, t)
		}
		return jsonRefusal(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (!f.IsExported() && !f.Anonymous) || f.Tag.Get("json") == "-" {
				continue
			}
			if why := jsonRefusal(f.Type, seen); why != "" {
				return fmt.Sprintf("in field %s of %s: %s", f.Name, t, why)
			}
		}
	}
	return ""
}

// crossedError is an error that crossed from a child inside a task's
// result: its message, and the names of the module's sentinels (and of
// the context's errors) that were in its chain, for errors.Is. In a
// shadow value it is a plain struct, whose zero value (Set false) stands
// for a nil error: gob cannot encode a nil pointer in a slice or a map.
type crossedError struct {
	Set       bool     `json:",omitempty"`
	Message   string   `json:",omitempty"`
	Sentinels []string `json:",omitempty"`
	Context   []string `json:",omitempty"` // "canceled", "deadline"
}

func newCrossedError(err error) crossedError {
	e := crossedError{Set: true, Message: err.Error(), Sentinels: sentinel.Names(err)}
	if errors.Is(err, context.Canceled) {
		e.Context = append(e.Context, "canceled")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		e.Context = append(e.Context, "deadline")
	}
	return e
}

func (e *crossedError) Error() string { return e.Message }

// Is reports whether target is one of the module's sentinels, or one of
// the context's errors, that the error's chain held in the child.
func (e *crossedError) Is(target error) bool {
	switch target {
	case context.Canceled:
		return contains(e.Context, "canceled")
	case context.DeadlineExceeded:
		return contains(e.Context, "deadline")
	}
	return sentinel.Named(target, e.Sentinels)
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// crossing is how values of a type with errors in it go through a
// built-in codec: as a shadow value, of a type built once from the
// user's, in which every error is a *crossedError.
type crossing struct {
	top  reflect.Type // struct{ V shadow }: a nil pointer cannot be the whole value for gob
	conv *conversion
}

// conversion converts values of one type to its shadow and back.
type conversion struct {
	shadow   reflect.Type
	to, from func(reflect.Value) reflect.Value
}

// crossingFor returns how values of t cross c, or nil when they go to it
// as they are: t holds no error, c is not one of the module's own codecs,
// or t is of a form that cannot be shadowed (a recursive type with errors
// in it, or a struct with an unexported embedded struct beside errors),
// where an error that is not nil fails to encode.
func crossingFor(c Codec, t reflect.Type) *crossing {
	if _, ok := c.(codec.Checker); !ok {
		return nil
	}
	b := shadowBuilder{state: map[reflect.Type]int{}}
	conv := b.build(t)
	if conv == nil || b.failed {
		return nil
	}
	top := reflect.StructOf([]reflect.StructField{{Name: "V", Type: conv.shadow}})
	return &crossing{top: top, conv: conv}
}

// encode returns v (of the type the crossing was made for) as the value
// to hand to the codec.
func (c *crossing) encode(v reflect.Value) any {
	w := reflect.New(c.top).Elem()
	w.Field(0).Set(c.conv.to(v))
	return w.Addr().Interface()
}

// decode unmarshals data with dec into out, a pointer to the type the
// crossing was made for.
func (c *crossing) decode(dec Codec, data []byte, out reflect.Value) error {
	w := reflect.New(c.top)
	if err := dec.Unmarshal(data, w.Interface()); err != nil {
		return err
	}
	out.Elem().Set(c.conv.from(w.Elem().Field(0)))
	return nil
}

// shadowBuilder builds the conversions of one type and of the types in it.
type shadowBuilder struct {
	state  map[reflect.Type]int // 1 while its conversion is being built, 2 once built
	failed bool                 // a type with errors in it cannot be shadowed
}

// build returns the conversion of t, or nil when t holds no error.
func (b *shadowBuilder) build(t reflect.Type) *conversion {
	if t == errorType {
		return errorConversion
	}
	if codec.Implements(t, codec.GobEncoder, codec.BinaryMarshaler, codec.JSONMarshaler, codec.TextMarshaler) {
		return nil // it encodes itself
	}
	switch b.state[t] {
	case 1:
		// A recursive type. Its shadow would have to be recursive too,
		// which reflect cannot build: if errors are in it, give up.
		b.recursive(t)
		return nil
	case 2:
		// Built already, in another branch: build again (cheap, and
		// the result is the same).
	}
	b.state[t] = 1
	defer func() { b.state[t] = 2 }()
	switch t.Kind() {
	case reflect.Pointer:
		return b.pointer(t)
	case reflect.Slice:
		return b.slice(t)
	case reflect.Array:
		return b.array(t)
	case reflect.Map:
		return b.mapOf(t)
	case reflect.Struct:
		return b.structOf(t)
	}
	return nil
}

// recursive marks the building as failed if the recursive type t holds
// an error: its shadow cannot be built.
func (b *shadowBuilder) recursive(t reflect.Type) {
	if holdsError(t, map[reflect.Type]bool{}) {
		b.failed = true
	}
}

// holdsError reports whether a value of t may hold an error where a
// conversion would look for one.
func holdsError(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == errorType {
		return true
	}
	if seen[t] || codec.Implements(t, codec.GobEncoder, codec.BinaryMarshaler, codec.JSONMarshaler, codec.TextMarshaler) {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return holdsError(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsError(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

var crossedErrorType = reflect.TypeFor[crossedError]()

var errorConversion = &conversion{
	shadow: crossedErrorType,
	to: func(v reflect.Value) reflect.Value {
		if v.IsNil() {
			return reflect.Zero(crossedErrorType)
		}
		return reflect.ValueOf(newCrossedError(v.Interface().(error)))
	},
	from: func(v reflect.Value) reflect.Value {
		out := reflect.New(errorType).Elem()
		if e := v.Interface().(crossedError); e.Set {
			out.Set(reflect.ValueOf(&e))
		}
		return out
	},
}

func (b *shadowBuilder) pointer(t reflect.Type) *conversion {
	e := b.build(t.Elem())
	if e == nil {
		return nil
	}
	shadow := reflect.PointerTo(e.shadow)
	return &conversion{
		shadow: shadow,
		to: func(v reflect.Value) reflect.Value {
			if v.IsNil() {
				return reflect.Zero(shadow)
			}
			p := reflect.New(e.shadow)
			p.Elem().Set(e.to(v.Elem()))
			return p
		},
		from: func(v reflect.Value) reflect.Value {
			if v.IsNil() {
				return reflect.Zero(t)
			}
			p := reflect.New(t.Elem())
			p.Elem().Set(e.from(v.Elem()))
			return p
		},
	}
}

func (b *shadowBuilder) slice(t reflect.Type) *conversion {
	e := b.build(t.Elem())
	if e == nil {
		return nil
	}
	shadow := reflect.SliceOf(e.shadow)
	each := func(v reflect.Value, to reflect.Type, f func(reflect.Value) reflect.Value) reflect.Value {
		if v.IsNil() {
			return reflect.Zero(to)
		}
		s := reflect.MakeSlice(to, v.Len(), v.Len())
		for i := range v.Len() {
			s.Index(i).Set(f(v.Index(i)))
		}
		return s
	}
	return &conversion{
		shadow: shadow,
		to:     func(v reflect.Value) reflect.Value { return each(v, shadow, e.to) },
		from:   func(v reflect.Value) reflect.Value { return each(v, t, e.from) },
	}
}

func (b *shadowBuilder) array(t reflect.Type) *conversion {
	e := b.build(t.Elem())
	if e == nil {
		return nil
	}
	shadow := reflect.ArrayOf(t.Len(), e.shadow)
	each := func(v reflect.Value, to reflect.Type, f func(reflect.Value) reflect.Value) reflect.Value {
		a := reflect.New(to).Elem()
		for i := range v.Len() {
			a.Index(i).Set(f(v.Index(i)))
		}
		return a
	}
	return &conversion{
		shadow: shadow,
		to:     func(v reflect.Value) reflect.Value { return each(v, shadow, e.to) },
		from:   func(v reflect.Value) reflect.Value { return each(v, t, e.from) },
	}
}

func (b *shadowBuilder) mapOf(t reflect.Type) *conversion {
	if holdsError(t.Key(), map[reflect.Type]bool{}) {
		b.failed = true // errors as keys: left as they are
		return nil
	}
	e := b.build(t.Elem())
	if e == nil {
		return nil
	}
	shadow := reflect.MapOf(t.Key(), e.shadow)
	each := func(v reflect.Value, to reflect.Type, f func(reflect.Value) reflect.Value) reflect.Value {
		if v.IsNil() {
			return reflect.Zero(to)
		}
		m := reflect.MakeMapWithSize(to, v.Len())
		for it := v.MapRange(); it.Next(); {
			m.SetMapIndex(it.Key(), f(it.Value()))
		}
		return m
	}
	return &conversion{
		shadow: shadow,
		to:     func(v reflect.Value) reflect.Value { return each(v, shadow, e.to) },
		from:   func(v reflect.Value) reflect.Value { return each(v, t, e.from) },
	}
}

// structOf shadows a struct with errors in it: its exported fields, under
// their names and tags, errors and what holds them shadowed. Unexported
// fields are left out, as the codecs leave them out. Embedded fields are
// plain fields in the shadow (JSON nests them instead of promoting their
// fields; both sides use the shadow). An unexported embedded struct,
// whose exported fields JSON would promote, cannot be shadowed.
func (b *shadowBuilder) structOf(t reflect.Type) *conversion {
	type field struct {
		src, dst int
		c        *conversion // nil: copied as it is
	}
	var fields []field
	var shadowFields []reflect.StructField
	shadowed := false
	embedsHidden := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			if f.Anonymous {
				embedsHidden = true
			}
			continue
		}
		c := b.build(f.Type)
		typ := f.Type
		if c != nil {
			shadowed = true
			typ = c.shadow
		}
		fields = append(fields, field{src: i, dst: len(shadowFields), c: c})
		shadowFields = append(shadowFields, reflect.StructField{Name: f.Name, Type: typ, Tag: f.Tag})
	}
	if !shadowed {
		return nil
	}
	if embedsHidden {
		b.failed = true
		return nil
	}
	shadow := reflect.StructOf(shadowFields)
	return &conversion{
		shadow: shadow,
		to: func(v reflect.Value) reflect.Value {
			s := reflect.New(shadow).Elem()
			for _, f := range fields {
				x := v.Field(f.src)
				if f.c != nil {
					x = f.c.to(x)
				}
				s.Field(f.dst).Set(x)
			}
			return s
		},
		from: func(v reflect.Value) reflect.Value {
			s := reflect.New(t).Elem()
			for _, f := range fields {
				x := v.Field(f.dst)
				if f.c != nil {
					x = f.c.from(x)
				}
				s.Field(f.src).Set(x)
			}
			return s
		},
	}
}
