package task

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/sentinel"
	"github.com/procrastinate-go/procrastinate/result"
)

// Codec turns arguments and results into bytes and back. Gob is the
// default; JSON is the other one offered. A Codec must be usable from
// several goroutines at once.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
	// Name labels the codec in errors.
	Name() string
}

// Gob is the default Codec: encoding/gob, one self-describing stream per
// value, with two short cuts. A []byte is passed as it is (its bytes are
// the payload; Unmarshal into a *[]byte keeps data without a copy). A
// bool, an integer, a float or a string (the exact types, not named types
// over them) is written in a short form of a few bytes instead of a gob
// stream, which costs a gob encoder and decoder per value; it decodes only
// into the type it was made from, and Unmarshal still takes a gob stream
// for those types. Gob encodes most Go values, including
// unexported-field-free structs, maps and slices; interface values need
// gob.Register. A nil pointer cannot be encoded as the whole value:
// Marshal returns an error for it (where gob itself would panic).
var Gob Codec = gobCodec{}

// JSON is the Codec of encoding/json.
var JSON Codec = jsonCodec{}

type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	// A []byte travels as it is: no encoder, no copy. A 64 MiB result
	// then costs one trip through the pipe, not three copies.
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	if b, ok := marshalScalar(v); ok {
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
	if len(data) > 0 && data[0] == scalarMark {
		return unmarshalScalar(data, v)
	}
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

func (gobCodec) Name() string { return "gob" }

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

// Option configures a task definition.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	codec Codec
}

// WithCodec encodes the task's argument and result with c instead of Gob.
func WithCodec(c Codec) Option {
	return optionFunc(func(cfg *config) { cfg.codec = c })
}

// WithJSON encodes the task's argument and result as JSON.
func WithJSON() Option { return WithCodec(JSON) }

// Func is the shape of a task: it gets a context that ends when the task
// is cancelled, its deadline passes, or the child is asked to stop, and
// its argument; it returns a result or an error.
type Func[A, R any] func(ctx context.Context, arg A) (R, error)

// Def is a defined task: a name known to every copy of the program, and
// the typed function behind it. Get one from Define. It is safe for
// concurrent use.
type Def[A, R any] struct {
	name  string
	codec Codec
	fn    Func[A, R]
	res   *crossing // how a result with errors in it crosses; nil: as it is
}

// entry is a definition without its types, as the child runs it.
type entry struct {
	name  string
	where string // file:line of the Define call
	run   func(ctx context.Context, arg []byte) ([]byte, error)
	warm  func()
}

// The registry: the one package-level state of the module besides the
// documented default dispatcher. It is filled by Define, which runs at
// package initialisation in every copy of the program.
var (
	regMu    sync.RWMutex
	registry = map[string]*entry{}
)

// Define registers fn under name and returns its handle. Call it at package
// level (var square = task.Define(...)), so that it runs in the parent and
// in every child alike: a child knows a task only if the same Define ran in
// it. Task names are global to the program: name a task after its package,
// "importpath.name" (say "example.com/thumbs.resize"), so that the tasks of
// two libraries cannot collide.
//
// A task is a func(context.Context, A) (R, error): the compiler infers A
// and R from fn, and says "cannot infer A and R" for a function of another
// shape. A task that needs several arguments takes a struct of them; one
// that needs none takes struct{}.
//
// Define panics when name is empty, fn is nil, the name is taken, or the
// codec can never carry A or R (with gob: an interface type such as any as
// the whole argument, a chan, a func or an unsafe.Pointer anywhere gob
// would encode it, a struct with fields of which none is exported; with
// JSON: a chan, a func, a complex number, a map key that is not a string,
// an integer or a TextMarshaler): those are mistakes in the program, found
// at start-up, and the message says what to do instead.
//
// An error in the result (the result itself, or in a field, a slice, a
// map or behind a pointer) crosses from the child as an error with the
// same message, for which errors.Is finds the module's sentinels
// (dispatcher.ErrClosed, task.ErrNotInChild, ...) and context.Canceled and
// context.DeadlineExceeded that were in its chain; its type and other
// errors in its chain stay in the child. What this costs is decided per
// type here: a result with no error in it goes to the codec as it is.
func Define[A, R any](name string, fn Func[A, R], opts ...Option) *Def[A, R] {
	if fn == nil {
		panic(fmt.Sprintf("task: Define(%q) with a nil function", name))
	}
	return defineAt(name, fn, opts, 2)
}

// defineAt is Define for a caller skip frames up.
func defineAt[A, R any](name string, fn Func[A, R], opts []Option, skip int) *Def[A, R] {
	if name == "" {
		panic("task: Define with an empty name")
	}
	if fn == nil {
		panic(fmt.Sprintf("task: Define(%q) with a nil function", name))
	}
	cfg := config{codec: Gob}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.codec == nil {
		panic(fmt.Sprintf("task: Define(%q) with a nil codec", name))
	}
	at, rt := reflect.TypeFor[A](), reflect.TypeFor[R]()
	if why := refuseType(cfg.codec, at, false); why != "" {
		panic(fmt.Sprintf("task: Define(%q): the argument type %s: %s", name, typeName(at), why))
	}
	if why := refuseType(cfg.codec, rt, true); why != "" {
		panic(fmt.Sprintf("task: Define(%q): the result type %s: %s", name, typeName(rt), why))
	}
	d := &Def[A, R]{name: name, codec: cfg.codec, fn: fn, res: crossingFor(cfg.codec, rt)}
	where := "unknown place"
	if _, file, line, ok := runtime.Caller(skip); ok {
		where = fmt.Sprintf("%s:%d", file, line)
	}
	regMu.Lock()
	defer regMu.Unlock()
	if prev, ok := registry[name]; ok {
		panic(fmt.Sprintf("task: Define(%q) at %s: the name is already defined at %s; task names must be unique in a program", name, where, prev.where))
	}
	registry[name] = &entry{name: name, where: where, run: d.runEncoded, warm: d.warm}
	return d
}

// Name returns the name the task was defined with.
func (d *Def[A, R]) Name() string { return d.name }

// Codec returns the codec of the task's argument and result.
func (d *Def[A, R]) Codec() Codec { return d.codec }

// warm runs the codec once over zero values of the argument and result
// types, so that their first-use costs (gob builds an engine per type) are
// paid before a task needs them.
func (d *Def[A, R]) warm() {
	var a A
	if b, err := d.codec.Marshal(a); err == nil {
		_ = d.codec.Unmarshal(b, &a)
	}
	var r R
	if b, err := d.encodeResult(r); err == nil {
		_, _ = d.decodeResult(b)
	}
}

// encodeResult encodes r with the task's codec, through its crossing if
// it has one.
func (d *Def[A, R]) encodeResult(r R) ([]byte, error) {
	if d.res == nil {
		return d.codec.Marshal(r)
	}
	return d.codec.Marshal(d.res.encode(reflect.ValueOf(&r).Elem()))
}

// decodeResult is encodeResult's reverse.
func (d *Def[A, R]) decodeResult(data []byte) (R, error) {
	var r R
	if d.res == nil {
		return r, d.codec.Unmarshal(data, &r)
	}
	return r, d.res.decode(d.codec, data, reflect.ValueOf(&r))
}

// runEncoded is the child's side of one call: decode, run, encode.
func (d *Def[A, R]) runEncoded(ctx context.Context, data []byte) ([]byte, error) {
	var arg A
	if err := d.codec.Unmarshal(data, &arg); err != nil {
		return nil, fmt.Errorf("task %q: decoding the argument (%s): %w", d.name, d.codec.Name(), err)
	}
	r, err := d.fn(ctx, arg)
	if err != nil {
		return nil, err
	}
	out, err := d.encodeResult(r)
	if err != nil {
		return nil, fmt.Errorf("task %q: encoding the result (%s): %w", d.name, d.codec.Name(), err)
	}
	return out, nil
}

func (d *Def[A, R]) decode(data []byte) (R, error) {
	r, err := d.decodeResult(data)
	if err != nil {
		return r, fmt.Errorf("task %q: decoding the result (%s): %w", d.name, d.codec.Name(), err)
	}
	return r, nil
}

// Call is one scheduled run of a task, as a Scheduler receives it: the
// task's name, its encoded argument, and the resolver of its future. The
// Scheduler must resolve it exactly once.
type Call struct {
	Task     string
	Arg      []byte
	Resolver *result.Resolver
	CallOptions
}

// CallOptions are the settings of one call, filled by the CallOption
// values given to Schedule. The zero value runs the task once, with no
// deadline, no limits, and the parent's environment.
type CallOptions struct {
	// Ctx, when not nil, cancels the call when it ends: a queued call
	// never starts, a running one is stopped (see WithContext).
	Ctx context.Context
	// Deadline, when not zero, is when the call is stopped; the earlier
	// of it and Ctx's deadline holds.
	Deadline time.Time
	// Retries is how many more times the task is run when its child dies
	// before answering; RetryDelay is the pause before the first retry,
	// doubled for each further one.
	Retries    int
	RetryDelay time.Duration
	// Limits, when not nil, are applied to the child that runs the call;
	// such a call always gets a child of its own.
	Limits *Limits
	// Activity, when not zero, kills the call's child when the task sends
	// no Heartbeat for longer than this.
	Activity time.Duration
}

// Limits bound the child process that runs one call.
type Limits struct {
	// AddressSpace is RLIMIT_AS in bytes; 0 means no limit. The Go runtime
	// reserves address space generously: a fresh Go child maps 1.2 to 1.6
	// GiB before its task runs (about 2 GiB under -race; see
	// docs/failure.md), so allow that much and what the task needs.
	AddressSpace uint64
	// CPUTime is RLIMIT_CPU, rounded up to whole seconds; 0 means no limit.
	// A child over it gets SIGXCPU.
	CPUTime time.Duration
	// Nice is the child's nice level, on every thread of the child: above
	// 0 lowers its priority, below 0 needs privilege, and 0 leaves the
	// level it inherits.
	Nice int
	// Dir is the child's working directory; empty means the parent's.
	Dir string
	// Env holds extra KEY=VALUE entries for the child's environment; one
	// for a variable that the parent has replaces it. An entry that is not
	// KEY=VALUE, holds a NUL byte, or sets one of the library's own
	// variables (PROCRASTINATE_CHILD, PROCRASTINATE_CPU_LIMIT,
	// PROCRASTINATE_NICE) fails the call: at once when it is scheduled,
	// as its worker starts in server mode.
	Env []string
}

// CallOption configures one call to Schedule.
type CallOption interface{ applyCall(*CallOptions) }

type callOptionFunc func(*CallOptions)

func (f callOptionFunc) applyCall(o *CallOptions) { f(o) }

// WithContext ties the call to ctx. When ctx ends before the task answers,
// a queued call never starts and a running one is stopped with the
// dispatcher's termination sequence (SIGTERM, a grace period, SIGKILL);
// either way the future resolves with a *result.CancelError that wraps
// ctx.Err(). Inside the child, the task's own context ends on SIGTERM
// (the dispatcher's termination signal, which the child catches for such
// a call).
func WithContext(ctx context.Context) CallOption {
	return callOptionFunc(func(o *CallOptions) { o.Ctx = ctx })
}

// WithTimeout stops the call d after Schedule, as WithContext does with a
// context whose deadline passed. The task's context in the child carries
// the same deadline.
func WithTimeout(d time.Duration) CallOption {
	return callOptionFunc(func(o *CallOptions) { o.Deadline = time.Now().Add(d) })
}

// WithRetries runs the task again, up to n more times, when its child dies
// before answering (a crash, a signal, os.Exit); not when the task returns
// an error or panics, and not when it is cancelled. The first retry waits
// delay, each further one twice as long as the one before. When every try
// died, the future resolves with a *result.RetryError listing each death.
func WithRetries(n int, delay time.Duration) CallOption {
	return callOptionFunc(func(o *CallOptions) { o.Retries, o.RetryDelay = n, delay })
}

// WithActivityTimeout kills the call's child when the task sends no
// Heartbeat for longer than d (the gem's activity check: a lazy worker is
// a hung one). The future then resolves with a *result.ChildDeath whose
// cause is the dispatcher's ErrInactive. The call runs alone in its child.
func WithActivityTimeout(d time.Duration) CallOption {
	return callOptionFunc(func(o *CallOptions) { o.Activity = d })
}

// WithLimits runs the call in a child of its own, bounded by l.
func WithLimits(l Limits) CallOption {
	return callOptionFunc(func(o *CallOptions) { o.Limits = &l })
}

// Scheduler takes calls to run in child processes. *dispatcher.Dispatcher
// is one. Submit must not block on children, and must resolve the call
// (at once, with an error, when it takes no more work).
type Scheduler interface {
	Submit(c *Call)
}

// ErrNilScheduler is the error of a future scheduled on a nil Scheduler:
// a nil interface, or a nil pointer such as the *dispatcher.Dispatcher
// that a failed dispatcher.Start returns.
var ErrNilScheduler = sentinel.New("task.ErrNilScheduler", "task: Schedule on a nil dispatcher")

// Schedule encodes arg, hands the call to s and returns its future at once:
// it never waits for a child. An argument that cannot be encoded resolves
// the future at once with the codec's error, and s never sees it. A nil s
// (or a nil pointer in s) resolves it with [ErrNilScheduler].
func (d *Def[A, R]) Schedule(s Scheduler, arg A, opts ...CallOption) *result.Result[R] {
	if isNil(s) {
		return result.Failed[R](ErrNilScheduler)
	}
	data, err := d.codec.Marshal(arg)
	if err != nil {
		return result.Failed[R](fmt.Errorf("task %q: encoding the argument (%s): %w", d.name, d.codec.Name(), err))
	}
	r, res := result.New(d.decode)
	c := &Call{Task: d.name, Arg: data, Resolver: res}
	for _, o := range opts {
		o.applyCall(&c.CallOptions)
	}
	s.Submit(c)
	return r
}

// isNil reports whether s is nil or holds a nil pointer, whose Submit
// would crash the caller.
func isNil(s Scheduler) bool {
	if s == nil {
		return true
	}
	rv := reflect.ValueOf(s)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// Names returns the names of all defined tasks, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookup(name string) *entry {
	regMu.RLock()
	defer regMu.RUnlock()
	return registry[name]
}
