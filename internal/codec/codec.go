// Package codec holds what the module's own codecs (task.JSON, and
// gobcodec.Codec) share: the short form for scalars, and the checks of
// Go types that Define makes with them.
package codec

import (
	"encoding"
	"fmt"
	"reflect"
)

// Own is a type that only this module can name. A method that takes it
// marks a codec as one of the module's.
type Own struct{}

// Checker is what the module's own codecs have beside task.Codec's
// methods. They encode Go values by reflection, so that Define can check
// the types it is given with them, and an error in a result can cross in
// a struct built with reflect.StructOf.
type Checker interface {
	// CheckType returns why the codec can never carry a value of type t,
	// or nil when it may.
	CheckType(t reflect.Type, _ Own) error
}

// The interfaces by which a type encodes itself.
type (
	gobEncoder interface {
		GobEncode() ([]byte, error)
	}
	jsonMarshaler interface {
		MarshalJSON() ([]byte, error)
	}
)

var (
	// GobEncoder, BinaryMarshaler, JSONMarshaler and TextMarshaler are
	// the types of the interfaces by which a value encodes itself, with
	// gob or JSON.
	GobEncoder      = reflect.TypeFor[gobEncoder]()
	BinaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	JSONMarshaler   = reflect.TypeFor[jsonMarshaler]()
	TextMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// Implements reports whether t, or a pointer to it, implements one of
// ifaces.
func Implements(t reflect.Type, ifaces ...reflect.Type) bool {
	for _, i := range ifaces {
		if t.Implements(i) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(i)) {
			return true
		}
	}
	return false
}

// TypeName is t as the messages of Define name it.
func TypeName(t reflect.Type) string {
	if t.Kind() == reflect.Interface && t.NumMethod() == 0 && t.Name() == "" {
		return "any"
	}
	return t.String()
}

// CannotCross says why a value of type t, a chan, a func or an
// unsafe.Pointer, cannot go to another process.
func CannotCross(t reflect.Type) string {
	if t.Kind() == reflect.UnsafePointer {
		return fmt.Sprintf("a %s cannot cross to another process: an address means nothing there", t)
	}
	return fmt.Sprintf("a %s cannot cross to another process: pass what the task needs to make one in the child instead (a size, a name, a path), or keep that part of the work in the parent", t)
}
