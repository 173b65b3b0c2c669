package cluster

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
)

// The headers of a call message on the calls stream, and of a result.
// Names only ever get added: a reader ignores what it does not know.
const (
	hdrCall       = "Procrastinate-Call" // the wire version of a call: "1"
	hdrTask       = "Procrastinate-Task"
	hdrID         = "Procrastinate-Id" // the call's id: <client id>.<number>
	hdrKey        = "Procrastinate-Key"
	hdrDeadline   = "Procrastinate-Deadline" // Unix nanoseconds
	hdrRetries    = "Procrastinate-Retries"
	hdrRetryDelay = "Procrastinate-Retry-Delay" // nanoseconds
	hdrActivity   = "Procrastinate-Activity"    // nanoseconds
	hdrLimits     = "Procrastinate-Limits"      // JSON of wireLimits
	hdrMaxDeliver = "Procrastinate-Max-Deliver"
	hdrCancel     = "Procrastinate-Cancellable" // "1": the caller may cancel the call

	hdrUsage  = "Procrastinate-Usage" // what the call cost its child: user and system CPU in nanoseconds, peak RSS in bytes
	hdrLog    = "Procrastinate-Log"   // the last lines the call's task logged: a JSON array of strings
	hdrWorker = "Procrastinate-Worker"
	hdrStatus = "Procrastinate-Status" // "ok": the payload is the answer; "error": a wireError
	hdrReason = "Procrastinate-Reason" // on a dead letter: why it is there

	callVersion = "1"
	statusOK    = "ok"
	statusError = "error"

	// hdrExpectLastSubjectSeq is JetStream's header that makes a publish
	// fail when its subject already holds a message: the first result of
	// a call is stored, a later one is refused.
	hdrExpectLastSubjectSeq = "Nats-Expected-Last-Subject-Sequence"
	// hdrNATSStatus is the header of a message that the server itself
	// sends: "503" to the reply subject of a message that no subscriber
	// took.
	hdrNATSStatus = "Status"
)

// names holds the subjects and stream names under one prefix.
type names struct {
	prefix   string
	calls    string // subject of the calls
	results  string // subject prefix of the results: results.c.<id>, results.k.<key>
	dead     string // subject of the dead letters
	cancel   string // core subject of cancel requests
	progress string // core subject prefix of progress reports: progress.<id>
	answers  string // core subject prefix of answers sent to their caller: answers.<id>

	callStream, resultStream, deadStream string
	consumer                             string
}

const defaultPrefix = "procrastinate"

func newNames(prefix string) (names, error) {
	if prefix == "" {
		prefix = defaultPrefix
	}
	if err := checkTokens(prefix, false); err != nil {
		return names{}, fmt.Errorf("cluster: Config.Prefix %q: %v; use letters, digits, '-' and '_' in dot-separated words", prefix, err)
	}
	up := strings.ToUpper(strings.Map(func(r rune) rune {
		if r == '.' || r == '-' {
			return '_'
		}
		return r
	}, prefix))
	return names{
		prefix:       prefix,
		calls:        prefix + ".calls",
		results:      prefix + ".results",
		dead:         prefix + ".dead",
		cancel:       prefix + ".cancel",
		progress:     prefix + ".progress",
		answers:      prefix + ".answers",
		callStream:   up + "_CALLS",
		resultStream: up + "_RESULTS",
		deadStream:   up + "_DEAD",
		consumer:     "workers",
	}, nil
}

// resultSubject is where the result of the call with id goes.
func (n names) resultSubject(id string) string { return n.results + ".c." + id }

// answerSubject is where a worker sends the result of the call with id
// to its caller, outside any stream.
func (n names) answerSubject(id string) string { return n.answers + "." + id }

// progressSubject is where the progress reports of the call with id go,
// on core NATS: a report lost is replaced by the next.
func (n names) progressSubject(id string) string { return n.progress + "." + id }

// wireProgress is a progress report as it crosses: a running call's
// latest progress (see task.Progress), as text "done total attempt
// sent-unix-nanoseconds".
type wireProgress struct {
	Done, Total int64
	Attempt     int
	SentNs      int64
}

func (p wireProgress) encode() []byte {
	return fmt.Appendf(nil, "%d %d %d %d", p.Done, p.Total, p.Attempt, p.SentNs)
}

func decodeProgress(b []byte) (wireProgress, error) {
	var p wireProgress
	if _, err := fmt.Sscanf(string(b), "%d %d %d %d", &p.Done, &p.Total, &p.Attempt, &p.SentNs); err != nil {
		return wireProgress{}, fmt.Errorf("cluster: a progress report that does not read (%q): %w", b, err)
	}
	return p, nil
}

// wireUsage is what a call cost its child, as it crosses in the header
// hdrUsage: "user-ns system-ns maxrss-bytes".
type wireUsage struct {
	UserNs, SystemNs, MaxRSS int64
}

func (u wireUsage) encode() string { return fmt.Sprintf("%d %d %d", u.UserNs, u.SystemNs, u.MaxRSS) }

func decodeUsage(s string) (wireUsage, bool) {
	var u wireUsage
	_, err := fmt.Sscanf(s, "%d %d %d", &u.UserNs, &u.SystemNs, &u.MaxRSS)
	return u, err == nil
}

// The most of a call's log lines that a result carries, as its future
// holds them (result.Result.Log): the last maxLogLines, each cut at
// maxLogLine bytes. A reader cuts what a worker sent to the same bounds.
const (
	maxLogLines = 20
	maxLogLine  = 512
)

// encodeLog is the value of hdrLog for lines, "" for none.
func encodeLog(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	b, _ := json.Marshal(boundLog(lines)) // strings: never fails; invalid UTF-8 becomes U+FFFD
	return string(b)
}

// decodeLog reads the value of hdrLog, cut to the bounds; nil when it
// does not read.
func decodeLog(s string) []string {
	var lines []string
	if err := json.Unmarshal([]byte(s), &lines); err != nil {
		return nil
	}
	return boundLog(lines)
}

// boundLog returns the last maxLogLines of lines, each cut at maxLogLine
// bytes.
func boundLog(lines []string) []string {
	lines = lines[max(len(lines)-maxLogLines, 0):]
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[:min(len(l), maxLogLine)]
	}
	return out
}

// keySubject is where the result stored under key goes.
func (n names) keySubject(key string) string { return n.results + ".k." + key }

// checkTokens reports what is wrong with s as a subject of dot-separated
// tokens: empty tokens, white space, wildcards; with slash, '/' and '='
// are allowed too (as in keys).
func checkTokens(s string, slash bool) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("has an empty word (a leading, trailing or double dot)")
		}
		for _, r := range tok {
			switch {
			case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)), r == '-', r == '_':
			case slash && (r == '/' || r == '='):
			default:
				return fmt.Errorf("has the character %q", r)
			}
		}
	}
	return nil
}

// maxKey is the longest key a call may have.
const maxKey = 200

// checkKey reports whether key may name a result.
func checkKey(key string) error {
	if len(key) > maxKey {
		return fmt.Errorf("cluster: the key is %d bytes; at most %d are allowed", len(key), maxKey)
	}
	if err := checkTokens(key, true); err != nil {
		return fmt.Errorf("cluster: the key %q %v; use letters, digits and - _ / = in dot-separated words", key, err)
	}
	return nil
}

// wireLimits is the wire form of task.Process.
type wireLimits struct {
	AddressSpace uint64   `json:"address_space,omitempty"`
	CPUTimeNs    int64    `json:"cpu_time_ns,omitempty"`
	Nice         int      `json:"nice,omitempty"`
	Dir          string   `json:"dir,omitempty"`
	Env          []string `json:"env,omitempty"`
}

// wireCall is one call as it travels: the task, its encoded argument, and
// the options of the call that cross to the worker.
type wireCall struct {
	Task       string
	ID         string
	Key        string
	Deadline   time.Time
	Retries    int
	RetryDelay time.Duration
	Activity   time.Duration
	Limits     *wireLimits
	MaxDeliver int
	// Cancellable says that the caller gave the call a context, which may
	// end before the call does.
	Cancellable bool
	Arg         []byte

	// usage is what the call cost its child, and log the last lines its
	// task logged, set by the worker that ran it for its result; they do
	// not go with the call.
	usage *wireUsage
	log   []string
}

// encode makes the message of c on subject.
func (c *wireCall) encode(subject string) *nats.Msg {
	h := nats.Header{
		hdrCall:       []string{callVersion},
		hdrTask:       []string{c.Task},
		hdrID:         []string{c.ID},
		hdrMaxDeliver: []string{strconv.Itoa(c.MaxDeliver)},
	}
	if c.Key != "" {
		h[hdrKey] = []string{c.Key}
	}
	if !c.Deadline.IsZero() {
		h[hdrDeadline] = []string{strconv.FormatInt(c.Deadline.UnixNano(), 10)}
	}
	if c.Retries > 0 {
		h[hdrRetries] = []string{strconv.Itoa(c.Retries)}
	}
	if c.RetryDelay > 0 {
		h[hdrRetryDelay] = []string{strconv.FormatInt(int64(c.RetryDelay), 10)}
	}
	if c.Activity > 0 {
		h[hdrActivity] = []string{strconv.FormatInt(int64(c.Activity), 10)}
	}
	if c.Cancellable {
		h[hdrCancel] = []string{"1"}
	}
	if c.Limits != nil {
		b, _ := json.Marshal(c.Limits) // strings, numbers and a []string: never fails
		h[hdrLimits] = []string{string(b)}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: c.Arg}
}

// malformed returns an error that wraps ErrMalformedCall.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedCall, fmt.Sprintf(format, args...))
}

// decodeCall reads a call message. It never panics. On an error the
// returned call still holds the id and task when the message had valid
// ones, so that the caller can be told.
func decodeCall(h nats.Header, data []byte, maxArg int) (wireCall, error) {
	var c wireCall
	if id := h.Get(hdrID); id != "" {
		if checkID(id) == nil {
			c.ID = id
		} else {
			return c, malformed("the header %s %q is not a call id (<client>.<number>)", hdrID, id)
		}
	} else {
		return c, malformed("the header %s is missing", hdrID)
	}
	c.Task = h.Get(hdrTask)
	if c.Task == "" {
		return c, malformed("the header %s is missing", hdrTask)
	}
	if v := h.Get(hdrCall); v != callVersion {
		return c, malformed("the header %s is %q; this worker reads version %s", hdrCall, v, callVersion)
	}
	if key := h.Get(hdrKey); key != "" {
		if err := checkKey(key); err != nil {
			return c, malformed("the header %s: %v", hdrKey, err)
		}
		c.Key = key
	}
	var err error
	if c.MaxDeliver, err = intHeader(h, hdrMaxDeliver, 1); err != nil {
		return c, err
	}
	if v := h.Get(hdrDeadline); v != "" {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ns <= 0 {
			return c, malformed("the header %s %q is not a positive number of Unix nanoseconds", hdrDeadline, v)
		}
		c.Deadline = time.Unix(0, ns)
	}
	if c.Retries, err = intHeader(h, hdrRetries, 0); err != nil {
		return c, err
	}
	d, err := intHeader(h, hdrRetryDelay, 0)
	if err != nil {
		return c, err
	}
	c.RetryDelay = time.Duration(d)
	if d, err = intHeader(h, hdrActivity, 0); err != nil {
		return c, err
	}
	c.Activity = time.Duration(d)
	switch v := h.Get(hdrCancel); v {
	case "":
	case "1":
		c.Cancellable = true
	default:
		return c, malformed("the header %s is %q; want 1 or none", hdrCancel, v)
	}
	if v := h.Get(hdrLimits); v != "" {
		var l wireLimits
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return c, malformed("the header %s is not the JSON of the call's limits: %v", hdrLimits, err)
		}
		if len(l.Env) == 0 {
			l.Env = nil
		}
		if l.CPUTimeNs < 0 {
			return c, malformed("the header %s has a negative CPU time", hdrLimits)
		}
		c.Limits = &l
	}
	if maxArg > 0 && len(data) > maxArg {
		return c, malformed("the argument is %d bytes, over this worker's limit of %d (cluster.MaxCallSize)", len(data), maxArg)
	}
	c.Arg = data
	return c, nil
}

// intHeader reads a header holding a whole number of at least min; an
// absent header reads as min.
func intHeader(h nats.Header, name string, min int) (int, error) {
	v := h.Get(name)
	if v == "" {
		return min, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < int64(min) || n > 1<<53 {
		return 0, malformed("the header %s %q is not a whole number of at least %d", name, v, min)
	}
	return int(n), nil
}

// checkID reports whether id has the form <client>.<number>.
func checkID(id string) error {
	client, num, ok := strings.Cut(id, ".")
	if !ok || client == "" || checkTokens(client, false) != nil {
		return fmt.Errorf("not <client>.<number>")
	}
	if _, err := strconv.ParseUint(num, 10, 64); err != nil {
		return fmt.Errorf("not <client>.<number>")
	}
	return nil
}
