// Package sentinel holds the type of the module's sentinel errors. A
// sentinel is compared by identity within a process, as any other; its
// name lets an error that held it in its chain in a child process still
// match it with errors.Is once it has crossed to the parent (see task's
// codecs).
package sentinel

// Error is a sentinel error of the module. Get one from New or Wrap, and
// keep it in a package-level variable of type error.
type Error struct {
	name  string // the package and the variable, as "dispatcher.ErrClosed": unique in the module
	msg   string
	wraps error // the sentinel it wraps (see Wrap), or nil
}

// New returns a sentinel named name (the package and the variable, as
// "dispatcher.ErrClosed") whose Error method returns msg.
func New(name, msg string) error { return &Error{name: name, msg: msg} }

// Wrap returns a sentinel named name that wraps parent, another sentinel,
// with the message parent's message, ": " and msg.
func Wrap(name string, parent error, msg string) error {
	return &Error{name: name, msg: parent.Error() + ": " + msg, wraps: parent}
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the sentinel that e wraps, or nil.
func (e *Error) Unwrap() error { return e.wraps }

// Names returns the names of the sentinels in err's tree (what Unwrap
// methods lead to, as errors.Is walks it), each once, in the order found.
func Names(err error) []string {
	var names []string
	var walk func(error)
	walk = func(err error) {
		for err != nil {
			if s, ok := err.(*Error); ok && !contains(names, s.name) {
				names = append(names, s.name)
			}
			switch u := err.(type) {
			case interface{ Unwrap() error }:
				err = u.Unwrap()
			case interface{ Unwrap() []error }:
				for _, e := range u.Unwrap() {
					walk(e)
				}
				return
			default:
				return
			}
		}
	}
	walk(err)
	return names
}

// Named reports whether target is a sentinel whose name is among names.
func Named(target error, names []string) bool {
	s, ok := target.(*Error)
	return ok && contains(names, s.name)
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}
