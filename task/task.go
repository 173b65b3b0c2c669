package task

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync"

	"github.com/procrastinate-go/procrastinate/internal/codec"
	"github.com/procrastinate-go/procrastinate/internal/future"
	"github.com/procrastinate-go/procrastinate/internal/sentinel"
	"github.com/procrastinate-go/procrastinate/result"
)

// Def is a defined task: a name known to every copy of the program, and
// the typed function behind it. Get one from [Define], [DefineWorker] or
// [Raw]. It is safe for concurrent use.
type Def[A, R any] struct {
	name  string
	codec Codec
	fn    func(context.Context, A) (R, error)
	res   *crossing // how a result with errors in it crosses; nil: as it is
	// unknown marks a handle from Raw for a name that no Define
	// registered: its calls fail at once.
	unknown bool
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
// that needs none takes struct{}. The argument and the result are encoded
// with [JSON], or the codec that [WithCodec] gives.
//
// Define panics when name is empty, fn is nil, the name is taken, or the
// codec can never carry A or R (with JSON: a chan, a func, a complex
// number, a map key that is not a string, an integer or a TextMarshaler;
// for gob, see package gobcodec): those are mistakes in the program,
// found at start-up, and the message says what to do instead.
//
// An error in the result (the result itself, or in a field, a slice, a
// map or behind a pointer) crosses from the child as an error with the
// same message, for which errors.Is finds the module's sentinels
// (dispatcher.ErrClosed, task.ErrNotInChild, ...) and context.Canceled and
// context.DeadlineExceeded that were in its chain; its type and other
// errors in its chain stay in the child. What this costs is decided per
// type here: a result with no error in it goes to the codec as it is.
func Define[A, R any](name string, fn func(ctx context.Context, arg A) (R, error), opts ...Option) *Def[A, R] {
	if fn == nil {
		panic(fmt.Sprintf("task: Define(%q) with a nil function", name))
	}
	return defineAt(name, fn, opts, 2)
}

// defineAt is Define for a caller skip frames up.
func defineAt[A, R any](name string, fn func(context.Context, A) (R, error), opts []Option, skip int) *Def[A, R] {
	if name == "" {
		panic("task: Define with an empty name")
	}
	if fn == nil {
		panic(fmt.Sprintf("task: Define(%q) with a nil function", name))
	}
	cfg := config{codec: JSON}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.codec == nil {
		panic(fmt.Sprintf("task: Define(%q) with a nil codec", name))
	}
	at, rt := reflect.TypeFor[A](), reflect.TypeFor[R]()
	if err := checkType(cfg.codec, at, false); err != nil {
		panic(fmt.Sprintf("task: Define(%q): the argument type %s: %v", name, codec.TypeName(at), err))
	}
	if err := checkType(cfg.codec, rt, true); err != nil {
		panic(fmt.Sprintf("task: Define(%q): the result type %s: %v", name, codec.TypeName(rt), err))
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

// ErrNilScheduler is the error of a future scheduled on a nil Scheduler:
// a nil interface, or a nil pointer such as the *dispatcher.Dispatcher
// that a failed dispatcher.Start returns.
var ErrNilScheduler = sentinel.New("task.ErrNilScheduler", "task: Schedule on a nil dispatcher")

// Schedule encodes arg, hands the call to s and returns its future at once:
// it never waits for a child. An argument that cannot be encoded resolves
// the future at once with the codec's error, and s never sees it. A nil s
// (or a nil pointer in s) resolves it with [ErrNilScheduler]. What the
// future resolves to is listed in [docs/failure.md].
//
// [docs/failure.md]: https://github.com/procrastinate-go/procrastinate/blob/main/docs/failure.md
func (d *Def[A, R]) Schedule(s Scheduler, arg A, opts ...CallOption) *result.Result[R] {
	r, f := d.newResult()
	if isNil(s) {
		f.Fail(ErrNilScheduler)
		return r
	}
	if d.unknown {
		f.Fail(&result.TaskError{Task: d.name, Message: noSuchTask(d.name)})
		return r
	}
	data, err := d.codec.Marshal(arg)
	if err != nil {
		f.Fail(fmt.Errorf("task %q: encoding the argument (%s): %w", d.name, d.codec.Name(), err))
		return r
	}
	c := &Call{Task: d.name, Arg: data, f: f}
	for _, o := range opts {
		o.applyCall(c)
	}
	s.Submit(c)
	return r
}

// newResult returns a future of the task's result type and its core.
func (d *Def[A, R]) newResult() (*result.Result[R], *future.Future) {
	f := future.New()
	r := new(result.Result[R])
	future.Bind(r, f, d.decode)
	return r, f
}

// noSuchTask says that no task of that name is defined.
func noSuchTask(name string) string {
	return fmt.Sprintf("task: no task named %q is defined in this program (Define it at package level, so that it is defined in every copy of the program)", name)
}

// Raw returns a handle on the task defined under name that passes bytes
// through: its Schedule takes the encoded argument as it is, and its
// future's value is the encoded answer, neither decoded nor checked. It
// is for schedulers that forward calls by name (a worker that runs on its
// local dispatcher a call it received as bytes); what the bytes hold is
// what the task's own codec makes of its argument and result.
//
// Raw registers nothing. If no task is defined under name in this
// program, Schedule resolves the future at once with a *result.TaskError
// that says so.
func Raw(name string) *Def[[]byte, []byte] {
	return &Def[[]byte, []byte]{name: name, codec: rawCodec{}, unknown: lookup(name) == nil}
}

// rawCodec passes []byte through, both ways.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("raw: cannot encode a %T, only []byte", v)
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw: cannot decode into a %T, only *[]byte", v)
	}
	*p = data
	return nil
}

func (rawCodec) Name() string { return "raw" }

// isNil reports whether s is nil or holds a nil pointer, whose Submit
// would crash the caller.
func isNil(s Scheduler) bool {
	if s == nil {
		return true
	}
	rv := reflect.ValueOf(s)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

func lookup(name string) *entry {
	regMu.RLock()
	defer regMu.RUnlock()
	return registry[name]
}
