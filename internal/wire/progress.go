package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Progress is what a child sends, in a progress frame, about the task it
// runs: how far it is, and when it said so.
type Progress struct {
	Done, Total int64     // Total 0: unknown
	Sent        time.Time // the child's clock, to the nanosecond
}

// AppendProgress appends the encoding of p to dst: three varints.
func AppendProgress(dst []byte, p Progress) []byte {
	dst = binary.AppendVarint(dst, p.Done)
	dst = binary.AppendVarint(dst, p.Total)
	return binary.AppendVarint(dst, p.Sent.UnixNano())
}

// DecodeProgress decodes a progress frame's payload (without its
// invocation number).
func DecodeProgress(b []byte) (Progress, error) {
	var v [3]int64
	for i := range v {
		x, n := binary.Varint(b)
		if n <= 0 {
			return Progress{}, fmt.Errorf("%w: a progress report cut short or overlong (% x)", ErrMalformed, b)
		}
		v[i], b = x, b[n:]
	}
	if len(b) != 0 {
		return Progress{}, fmt.Errorf("%w: %d bytes after a progress report", ErrMalformed, len(b))
	}
	return Progress{Done: v[0], Total: v[1], Sent: time.Unix(0, v[2])}, nil
}

// Usage is what a child sends, in a usage frame just before its answer,
// about what the task cost: the CPU time of the child and of the processes
// it waited for, and the peak resident set, over the call (or over the
// child's whole life, for a child started for one call).
type Usage struct {
	User, System time.Duration
	MaxRSS       int64 // bytes
}

// AppendUsage appends the encoding of u to dst: three varints.
func AppendUsage(dst []byte, u Usage) []byte {
	dst = binary.AppendVarint(dst, int64(u.User))
	dst = binary.AppendVarint(dst, int64(u.System))
	return binary.AppendVarint(dst, u.MaxRSS)
}

// DecodeUsage decodes a usage frame's payload (without its invocation
// number).
func DecodeUsage(b []byte) (Usage, error) {
	var v [3]int64
	for i := range v {
		x, n := binary.Varint(b)
		if n <= 0 {
			return Usage{}, fmt.Errorf("%w: a usage report cut short or overlong (% x)", ErrMalformed, b)
		}
		v[i], b = x, b[n:]
	}
	if len(b) != 0 {
		return Usage{}, fmt.Errorf("%w: %d bytes after a usage report", ErrMalformed, len(b))
	}
	return Usage{User: time.Duration(v[0]), System: time.Duration(v[1]), MaxRSS: v[2]}, nil
}
