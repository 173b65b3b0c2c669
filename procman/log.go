package procman

// Logger is what a Manager, and a dispatcher, log through: a message and
// key/value pairs at one of four levels. An hclog.Logger and a
// *slog.Logger are Loggers as they are. The library links no logging
// package of its own, so that a child, which starts the whole program
// again, does not pay for one it never uses.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// nopLogger is the Logger of a Manager made without WithLogger.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
