package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// LogRecord is what a child sends, in a log frame, for one record that
// its task logged (task.Logger): the level as log/slog numbers it, the
// time, the message, and the attributes as key and text value pairs,
// groups flattened into dotted keys.
type LogRecord struct {
	Level int
	Time  time.Time
	Msg   string
	Attrs []string // key, value, key, value, ...
}

// AppendLogRecord appends the encoding of r to dst.
func AppendLogRecord(dst []byte, r *LogRecord) []byte {
	dst = binary.AppendVarint(dst, int64(r.Level))
	dst = binary.AppendVarint(dst, r.Time.UnixNano())
	dst = appendString(dst, r.Msg)
	dst = binary.AppendUvarint(dst, uint64(len(r.Attrs)))
	for _, s := range r.Attrs {
		dst = appendString(dst, s)
	}
	return dst
}

// DecodeLogRecord decodes a log frame's payload (without its invocation
// number).
func DecodeLogRecord(b []byte) (*LogRecord, error) {
	bad := func(what string) error { return fmt.Errorf("%w: a log record: %s", ErrMalformed, what) }
	level, n := binary.Varint(b)
	if n <= 0 {
		return nil, bad("no level")
	}
	b = b[n:]
	t, n := binary.Varint(b)
	if n <= 0 {
		return nil, bad("no time")
	}
	b = b[n:]
	r := &LogRecord{Level: int(level), Time: time.Unix(0, t)}
	var ok bool
	if r.Msg, b, ok = cutString(b); !ok {
		return nil, bad("no message")
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count%2 != 0 || count > uint64(len(b)) {
		return nil, bad("a bad count of attributes")
	}
	b = b[n:]
	r.Attrs = make([]string, count)
	for i := range r.Attrs {
		if r.Attrs[i], b, ok = cutString(b); !ok {
			return nil, bad("an attribute cut short")
		}
	}
	if len(b) != 0 {
		return nil, bad(fmt.Sprintf("%d bytes after it", len(b)))
	}
	return r, nil
}

func cutString(b []byte) (string, []byte, bool) {
	size, n := binary.Uvarint(b)
	if n <= 0 || size > uint64(len(b)-n) {
		return "", nil, false
	}
	b = b[n:]
	return string(b[:size]), b[size:], true
}
