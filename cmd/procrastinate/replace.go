package main

import (
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// A template is the command, as parallel joins its words: one line with
// replacement strings in it. It runs without a shell when the line needs
// none: it is split into words at white space, and each replacement
// string's value stays within its word.

// replRE finds the replacement strings: {} {.} {/} {//} {/.} {#} {%} and
// the positional {n} {n.} {n/} {n//} {n/.}.
var replRE = regexp.MustCompile(`\{(#|%|[0-9]*)(\.|/|//|/\.)?\}`)

// shellSpecial are the characters that make a line need a shell.
const shellSpecial = "|&;<>()$`\\\"'*?[]#~=%\n!"

type template struct {
	line      string
	shell     bool
	words     []string // when !shell
	maxPos    int      // the largest n of {n}
	usesSlot  bool
	bareInput bool // no command: each input is a command line
}

func newTemplate(words []string) (*template, error) {
	t := &template{line: strings.Join(words, " ")}
	if len(words) == 0 {
		t.bareInput = true
		return t, nil
	}
	if !replRE.MatchString(t.line) {
		t.line += " {}"
	}
	rest := replRE.ReplaceAllString(t.line, "")
	t.shell = strings.ContainsAny(rest, shellSpecial)
	if !t.shell {
		t.words = strings.Fields(t.line)
		// A shell builtin or keyword (exit, cd, if, ...) is no program.
		if first := t.words[0]; !replRE.MatchString(first) && !isProgram(first) {
			t.shell, t.words = true, nil
		}
	}
	for _, m := range replRE.FindAllStringSubmatch(t.line, -1) {
		switch m[1] {
		case "%":
			t.usesSlot = true
		case "#", "":
		default:
			n, err := strconv.Atoi(m[1])
			if err != nil || n < 1 {
				return nil, usagef("the replacement string %s does not name an input: they count from {1}", m[0])
			}
			t.maxPos = max(t.maxPos, n)
		}
	}
	return t, nil
}

// check refuses a template whose {n} names an input that no job has.
func (t *template) check(jobs [][]string) error {
	if t.maxPos == 0 {
		return nil
	}
	for _, j := range jobs {
		if len(j) < t.maxPos {
			return usagef("the replacement string {%d} names input %d, but a job has only %d inputs (%q)", t.maxPos, t.maxPos, len(j), strings.Join(j, " "))
		}
	}
	return nil
}

// isProgram reports whether word names a program: a path, or a name
// found in PATH (not a shell builtin or keyword).
func isProgram(word string) bool {
	if strings.Contains(word, "/") {
		return true
	}
	_, err := exec.LookPath(word)
	return err == nil
}

// value is the value of one replacement string for a job.
func value(m []string, args []string, seq, slot int) []string {
	var vals []string
	switch m[1] {
	case "#":
		return []string{strconv.Itoa(seq)}
	case "%":
		return []string{strconv.Itoa(slot)}
	case "":
		vals = args
	default:
		n, _ := strconv.Atoi(m[1])
		vals = []string{args[n-1]}
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = modify(v, m[2])
	}
	return out
}

// modify applies a replacement string's modifier: . drops the extension,
// / keeps the base name, // the directory, /. the base name without
// extension.
func modify(v, mod string) string {
	switch mod {
	case ".":
		return dropExt(v)
	case "/":
		return path.Base(v)
	case "//":
		if !strings.Contains(v, "/") {
			return "."
		}
		return path.Dir(v)
	case "/.":
		return dropExt(path.Base(v))
	}
	return v
}

func dropExt(v string) string {
	slash := strings.LastIndexByte(v, '/')
	dot := strings.LastIndexByte(v, '.')
	if dot > slash+1 {
		return v[:dot]
	}
	return v
}

// expand returns the job's argv (when the template runs without a shell)
// and its shell line, in which values are quoted (the joblog's and
// --dry-run's form, and what sh -c runs).
func (t *template) expand(args []string, seq, slot int) (argv []string, line string) {
	if t.bareInput {
		line = strings.Join(args, " ")
		words := strings.Fields(line)
		if strings.ContainsAny(line, shellSpecial) || len(words) == 0 || !isProgram(words[0]) {
			return nil, line
		}
		return words, line
	}
	line = replRE.ReplaceAllStringFunc(t.line, func(s string) string {
		vals := value(replRE.FindStringSubmatch(s), args, seq, slot)
		for i, v := range vals {
			vals[i] = shellQuote(v)
		}
		return strings.Join(vals, " ")
	})
	if t.shell {
		return nil, line
	}
	for _, w := range t.words {
		if w == "{}" || (replRE.FindString(w) == w && replRE.FindStringSubmatch(w)[1] == "") {
			m := replRE.FindStringSubmatch(w)
			argv = append(argv, value(m, args, seq, slot)...)
			continue
		}
		argv = append(argv, replRE.ReplaceAllStringFunc(w, func(s string) string {
			return strings.Join(value(replRE.FindStringSubmatch(s), args, seq, slot), " ")
		}))
	}
	return argv, line
}

// shellQuote quotes v for sh, as parallel does: unless it is made of
// letters, digits and - _ . + / only.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "-_.+/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'"'"'`) + "'"
}
