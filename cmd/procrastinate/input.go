package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
)

// readSources reads every input source before any job starts, so that an
// unreadable file fails the run with nothing started. It returns, for
// each source, its records split into columns.
func readSources(o *options, stdin io.Reader) ([][][]string, error) {
	srcs := o.sources
	if len(srcs) == 0 {
		srcs = []source{{file: "-"}}
	}
	var colsep *regexp.Regexp
	if o.colsep != "" {
		var err error
		if colsep, err = regexp.Compile(o.colsep); err != nil {
			return nil, usagef("--colsep %q is not a regular expression: %v", o.colsep, err)
		}
	}
	var out [][][]string
	stdinRead := false
	for _, s := range srcs {
		vals := s.args
		if s.args == nil {
			var data []byte
			var err error
			if s.file == "-" {
				if stdinRead {
					return nil, usagef("standard input can be read once only")
				}
				stdinRead = true
				data, err = io.ReadAll(bufio.NewReader(stdin))
			} else {
				data, err = os.ReadFile(s.file)
			}
			if err != nil {
				return nil, usagef("cannot read the input file %s: %v", s.file, err)
			}
			vals = splitRecords(data, o.delim)
		}
		recs := make([][]string, len(vals))
		for i, v := range vals {
			if colsep != nil {
				recs[i] = colsep.Split(v, -1)
			} else {
				recs[i] = []string{v}
			}
		}
		out = append(out, recs)
	}
	return out, nil
}

// splitRecords splits data at delim; a last delimiter ends the last record.
func splitRecords(data []byte, delim string) []string {
	if len(data) == 0 {
		return nil
	}
	parts := bytes.Split(data, []byte(delim))
	if len(parts[len(parts)-1]) == 0 {
		parts = parts[:len(parts)-1]
	}
	vals := make([]string, len(parts))
	for i, p := range parts {
		vals[i] = string(p)
		if delim == "\n" {
			vals[i] = strings.TrimSuffix(vals[i], "\r")
		}
	}
	return vals
}

// combine makes the records of the jobs: every combination of the
// sources' records, the first source's varying slowest (or, with --link,
// the n-th record of each, the shorter sources wrapping around).
func combine(o *options, srcs [][][]string) [][]string {
	if o.link {
		n := 0
		for _, s := range srcs {
			n = max(n, len(s))
		}
		var combos [][]string
		for i := 0; i < n; i++ {
			var c []string
			for _, s := range srcs {
				if len(s) > 0 {
					c = append(c, s[i%len(s)]...)
				}
			}
			combos = append(combos, c)
		}
		return combos
	}
	combos := [][]string{nil}
	for _, s := range srcs {
		var next [][]string
		for _, c := range combos {
			for _, r := range s {
				next = append(next, append(c[:len(c):len(c)], r...))
			}
		}
		combos = next
	}
	if len(srcs) == 0 || len(combos) == 1 && combos[0] == nil {
		return nil
	}
	return combos
}

// maxLine is the longest line a command can take: the kernel's bound on
// one argument (a shell line is one argument of sh -c), less its NUL.
const maxLine = 128<<10 - 1

// defaultMaxChars is -s when it is not given: room is left below maxLine
// for what the runner adds to a command.
const defaultMaxChars = maxLine - 4<<10

// group makes the jobs: -n records each (one by default), or with -X, -m
// and --xargs as many as fit in a line shorter than -s and, but for
// --xargs, the last lines spread evenly over the slots, as parallel does.
// A record that does not fit alone is an error.
func group(o *options, t *template, recs [][]string, slots int) ([][][]string, error) {
	maxChars := o.maxChars
	if maxChars == 0 {
		maxChars = defaultMaxChars
	}
	maxN := o.maxArgs
	if o.multi != "" && !o.maxArgsSet {
		maxN = len(recs)
	}
	spread := o.multi == "X" || o.multi == "m"
	bounded := o.multi != "" || o.maxChars > 0
	t.total = len(recs)
	var jobs [][][]string
	for i := 0; i < len(recs); {
		seq := len(jobs) + 1
		slot := 1 + (seq-1)%slots
		job := recs[i : i+1]
		n := 0
		if bounded {
			n = len(t.lineOf(flatten(job), seq, slot))
			if n >= maxChars {
				return nil, usagef("the command line is too long (%d >= %d, the bound of -s) for input %d: %.50q", n, maxChars, i+1, strings.Join(recs[i], " "))
			}
		}
		j := i + 1
		for ; j < len(recs) && j-i < maxN; j++ {
			if bounded {
				d := len(t.lineOf(flatten([][]string{recs[i], recs[j]}), seq, slot)) - len(t.lineOf(flatten(job[:1]), seq, slot))
				if n+d >= maxChars {
					break
				}
				n += d
			}
		}
		if spread && j == len(recs) && j-i > 1 {
			// The inputs left fit in this line: spread them over the
			// slots, this line and the next ones alike.
			spread = false
			maxN = (j - i + slots - 1) / slots
			j = i + maxN
		}
		jobs = append(jobs, recs[i:j])
		i = j
	}
	return jobs, nil
}

// flatten is a job's inputs: its records' columns, one after the other.
func flatten(recs [][]string) []string {
	var args []string
	for _, r := range recs {
		args = append(args, r...)
	}
	return args
}
