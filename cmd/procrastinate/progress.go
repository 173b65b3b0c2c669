package main

import (
	"io"
	"time"
)

// progress is --bar and --eta; a no-op without them.
type progress struct{}

func newProgress(o *options, w io.Writer, total int) *progress { return &progress{} }
func (p *progress) update(r *runner, running int)              {}
func (p *progress) tick() <-chan time.Time                     { return nil }
func (p *progress) end(r *runner)                              {}
