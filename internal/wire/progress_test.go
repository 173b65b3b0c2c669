package wire

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestProgressRoundTrip(t *testing.T) {
	for _, p := range []Progress{
		{},
		{Done: 3, Total: 10, Sent: time.Unix(0, 1_700_000_000_123_456_789)},
		{Done: math.MaxInt64, Total: math.MinInt64, Sent: time.Unix(0, math.MaxInt64)},
	} {
		b := AppendProgress(nil, p)
		got, err := DecodeProgress(b)
		if err != nil || got.Done != p.Done || got.Total != p.Total || got.Sent.UnixNano() != p.Sent.UnixNano() {
			t.Errorf("DecodeProgress(AppendProgress(%+v)) = %+v, %v; want it back, nil", p, got, err)
		}
	}
}

func TestProgressMalformed(t *testing.T) {
	good := AppendProgress(nil, Progress{Done: 1, Total: 2, Sent: time.Unix(5, 0)})
	for _, b := range [][]byte{nil, good[:len(good)-1], append(good, 0), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := DecodeProgress(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeProgress(% x) error = %v; want ErrMalformed", b, err)
		}
	}
}

func TestUsageRoundTrip(t *testing.T) {
	for _, u := range []Usage{{}, {User: 3 * time.Millisecond, System: time.Microsecond, MaxRSS: 12 << 20}} {
		got, err := DecodeUsage(AppendUsage(nil, u))
		if err != nil || got != u {
			t.Errorf("DecodeUsage(AppendUsage(%+v)) = %+v, %v; want it back, nil", u, got, err)
		}
	}
	good := AppendUsage(nil, Usage{User: 1, System: 2, MaxRSS: 3})
	for _, b := range [][]byte{nil, good[:2], append(good, 9)} {
		if _, err := DecodeUsage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeUsage(% x) error = %v; want ErrMalformed", b, err)
		}
	}
}

func TestLogRecordRoundTrip(t *testing.T) {
	r := &LogRecord{Level: -4, Time: time.Unix(0, 1_700_000_000_000_000_001), Msg: "hello\nworld", Attrs: []string{"k", "v", "g.x", ""}}
	got, err := DecodeLogRecord(AppendLogRecord(nil, r))
	if err != nil || got.Level != r.Level || !got.Time.Equal(r.Time) || got.Msg != r.Msg || len(got.Attrs) != 4 || got.Attrs[2] != "g.x" {
		t.Fatalf("DecodeLogRecord(AppendLogRecord(%+v)) = %+v, %v; want it back, nil", r, got, err)
	}
	good := AppendLogRecord(nil, r)
	for _, b := range [][]byte{nil, good[:len(good)-1], append(good, 0), AppendLogRecord(nil, &LogRecord{Attrs: []string{"odd"}})} {
		if _, err := DecodeLogRecord(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeLogRecord(% x) error = %v; want ErrMalformed", b, err)
		}
	}
}
