package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
)

// The short form for scalars, which the module's codecs use. A task whose
// argument or result is a bool, a sized or unsized integer, a float or a
// string would otherwise pay for an encoder and a decoder per value (for
// gob, about 60 allocations for an int each way, and on a child that has
// just woken, tens of microseconds of cold code). The short form is a
// zero byte (which neither a gob stream nor a JSON text starts with), the
// value's reflect.Kind, and the value: integers as varints, floats as the
// eight bytes of their float64 bits, a bool as one byte, a string as its
// bytes. It applies to the exact types only (a named type such as
// time.Duration goes through the codec), and it decodes only into the
// type it was made from.

// Mark opens a value in the short form.
const Mark = 0

// MarshalScalar returns v in the short form, and false if v is not one of
// the scalar types.
func MarshalScalar(v any) ([]byte, bool) {
	switch x := v.(type) {
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		return []byte{Mark, byte(reflect.Bool), b}, true
	case int:
		return appendSigned(reflect.Int, int64(x)), true
	case int8:
		return appendSigned(reflect.Int8, int64(x)), true
	case int16:
		return appendSigned(reflect.Int16, int64(x)), true
	case int32:
		return appendSigned(reflect.Int32, int64(x)), true
	case int64:
		return appendSigned(reflect.Int64, x), true
	case uint:
		return appendUnsigned(reflect.Uint, uint64(x)), true
	case uint8:
		return appendUnsigned(reflect.Uint8, uint64(x)), true
	case uint16:
		return appendUnsigned(reflect.Uint16, uint64(x)), true
	case uint32:
		return appendUnsigned(reflect.Uint32, uint64(x)), true
	case uint64:
		return appendUnsigned(reflect.Uint64, x), true
	case float32:
		return appendFloat(reflect.Float32, float64(x)), true
	case float64:
		return appendFloat(reflect.Float64, x), true
	case string:
		return append([]byte{Mark, byte(reflect.String)}, x...), true
	}
	return nil, false
}

func appendSigned(k reflect.Kind, x int64) []byte {
	return binary.AppendVarint([]byte{Mark, byte(k)}, x)
}

func appendUnsigned(k reflect.Kind, x uint64) []byte {
	return binary.AppendUvarint([]byte{Mark, byte(k)}, x)
}

func appendFloat(k reflect.Kind, x float64) []byte {
	return binary.LittleEndian.AppendUint64([]byte{Mark, byte(k)}, math.Float64bits(x))
}

// UnmarshalScalar decodes data, which is in the short form, into v, which
// must point to the scalar type it was made from.
func UnmarshalScalar(data []byte, v any) error {
	var err error
	switch p := v.(type) {
	case *bool:
		var b []byte
		if b, err = scalarBody(data, reflect.Bool); err == nil {
			if len(b) != 1 || b[0] > 1 {
				return fmt.Errorf("%d bytes are not a bool in the short form", len(data))
			}
			*p = b[0] == 1
		}
	case *int:
		err = decodeSigned(data, reflect.Int, p)
	case *int8:
		err = decodeSigned(data, reflect.Int8, p)
	case *int16:
		err = decodeSigned(data, reflect.Int16, p)
	case *int32:
		err = decodeSigned(data, reflect.Int32, p)
	case *int64:
		err = decodeSigned(data, reflect.Int64, p)
	case *uint:
		err = decodeUnsigned(data, reflect.Uint, p)
	case *uint8:
		err = decodeUnsigned(data, reflect.Uint8, p)
	case *uint16:
		err = decodeUnsigned(data, reflect.Uint16, p)
	case *uint32:
		err = decodeUnsigned(data, reflect.Uint32, p)
	case *uint64:
		err = decodeUnsigned(data, reflect.Uint64, p)
	case *float32:
		var f float64
		if err = decodeFloat(data, reflect.Float32, &f); err == nil {
			*p = float32(f)
		}
	case *float64:
		err = decodeFloat(data, reflect.Float64, p)
	case *string:
		var b []byte
		if b, err = scalarBody(data, reflect.String); err == nil {
			*p = string(b)
		}
	default:
		kind := "nothing"
		if len(data) > 1 {
			kind = "a " + reflect.Kind(data[1]).String()
		}
		return fmt.Errorf("%s in the short form cannot be decoded into a %T (parent and child must use the same types)", kind, v)
	}
	return err
}

// scalarBody checks that data is a value of kind k in the short form and
// returns what follows its kind.
func scalarBody(data []byte, k reflect.Kind) ([]byte, error) {
	if len(data) < 2 || data[0] != Mark {
		return nil, fmt.Errorf("%d bytes are not a value in the short form", len(data))
	}
	if got := reflect.Kind(data[1]); got != k {
		return nil, fmt.Errorf("a %v in the short form cannot be decoded into a %v (parent and child must use the same types)", got, k)
	}
	return data[2:], nil
}

func decodeSigned[T int | int8 | int16 | int32 | int64](data []byte, k reflect.Kind, p *T) error {
	b, err := scalarBody(data, k)
	if err != nil {
		return err
	}
	x, n := binary.Varint(b)
	if n <= 0 || n != len(b) || int64(T(x)) != x {
		return fmt.Errorf("%d bytes are not a %v in the short form", len(data), k)
	}
	*p = T(x)
	return nil
}

func decodeUnsigned[T uint | uint8 | uint16 | uint32 | uint64](data []byte, k reflect.Kind, p *T) error {
	b, err := scalarBody(data, k)
	if err != nil {
		return err
	}
	x, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || uint64(T(x)) != x {
		return fmt.Errorf("%d bytes are not a %v in the short form", len(data), k)
	}
	*p = T(x)
	return nil
}

func decodeFloat(data []byte, k reflect.Kind, p *float64) error {
	b, err := scalarBody(data, k)
	if err != nil {
		return err
	}
	if len(b) != 8 {
		return fmt.Errorf("%d bytes are not a %v in the short form", len(data), k)
	}
	*p = math.Float64frombits(binary.LittleEndian.Uint64(b))
	return nil
}
