package main

import (
	"bufio"
	"bytes"
	"fmt"
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

// combine makes the argument lists of the jobs: every combination of the
// sources' records, the first source's varying slowest (or, with --link,
// the n-th record of each, the shorter sources wrapping around), grouped
// by -n.
func combine(o *options, srcs [][][]string) [][]string {
	var combos [][]string
	if o.link {
		n := 0
		for _, s := range srcs {
			n = max(n, len(s))
		}
		for i := 0; i < n; i++ {
			var c []string
			for _, s := range srcs {
				if len(s) > 0 {
					c = append(c, s[i%len(s)]...)
				}
			}
			combos = append(combos, c)
		}
	} else {
		combos = [][]string{nil}
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
			combos = nil
		}
	}
	if o.maxArgs <= 1 {
		return combos
	}
	var jobs [][]string
	for i := 0; i < len(combos); i += o.maxArgs {
		var j []string
		for _, c := range combos[i:min(i+o.maxArgs, len(combos))] {
			j = append(j, c...)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

var _ = fmt.Sprint
