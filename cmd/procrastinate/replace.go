package main

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// A template is the command, as parallel joins its words: one line with
// replacement strings in it. It runs without a shell when the line needs
// none: it is split into words at white space, and each replacement
// string's value stays within its word.

// replKind says what a replacement string stands for.
type replKind int

const (
	replArg   replKind = iota // {} and its modified forms, {n}: inputs
	replSeq                   // {#}: the job's sequence number
	replSlot                  // {%}: the job's slot
	replTotal                 // {##}: the number of jobs
	replSeq0                  // {0#}: the sequence number, zero-padded
	replSlot0                 // {0%}: the slot, zero-padded
)

// repl is one replacement string, parsed.
type repl struct {
	kind replKind
	pos  int    // {n}: the input it names, from 1; 0 for every input
	mod  string // ".", "/", "//", "/.", and --plus's
}

// replacer finds the replacement strings of a run: parallel's, those
// --plus adds, and -I's string in place of {}.
type replacer struct {
	re      *regexp.Regexp
	i       string         // -I: the string that stands for {}; "" for {}
	dynamic *regexp.Regexp // --plus's strings that are not built
}

const (
	baseMods = `/\.|//|/|\.`
	plusMods = `/\.\.\.|/\.\.|/\.|//|/|\.\.\.|\.\.|\.|\+/|\+\.\.\.|\+\.\.|\+\.`
)

// plusDynamic are --plus's strings that take a parameter ({:-str},
// {#regexp}, ...) or a remote host; the runner refuses them.
const plusDynamic = `\{(?::-[^}]+|:\d+(?::\d+)?|##?[^#}][^}]*|%%?[^}]+|//?[#%]?[^}/]+/[^}]*|\^\^?[^}]+|,,?[^}]+|choose_k|uniq|slot|sshlogin|host|agrp|hgrp)\}`

func newReplacer(o *options) *replacer {
	mods, special := baseMods, `#|%`
	if o.plus {
		mods, special = plusMods, `##|0#|0%|#|%`
	}
	r := &replacer{i: o.replace}
	if o.replace == "" || o.replace == "{}" {
		r.i = ""
		r.re = regexp.MustCompile(`\{(?:` + special + `|[0-9]*(?:` + mods + `)?)\}`)
	} else {
		// parallel renames {} to -I's string, and has no {n} then.
		r.re = regexp.MustCompile(regexp.QuoteMeta(o.replace) + `|\{(?:` + special + `|` + mods + `)\}`)
	}
	if o.plus {
		r.dynamic = regexp.MustCompile(plusDynamic)
	}
	return r
}

// parse reads a match of r.re.
func (r *replacer) parse(m string) repl {
	if r.i != "" && m == r.i {
		return repl{kind: replArg}
	}
	in := m[1 : len(m)-1]
	switch in {
	case "#":
		return repl{kind: replSeq}
	case "%":
		return repl{kind: replSlot}
	case "##":
		return repl{kind: replTotal}
	case "0#":
		return repl{kind: replSeq0}
	case "0%":
		return repl{kind: replSlot0}
	}
	digits := len(in) - len(strings.TrimLeft(in, "0123456789"))
	p := repl{kind: replArg, mod: in[digits:]}
	if digits > 0 {
		p.pos, _ = strconv.Atoi(in[:digits])
		if p.pos == 0 {
			p.pos = -1 // {0}: names no input
		}
	}
	return p
}

// shellSpecial are the characters that make a line need a shell.
const shellSpecial = "|&;<>()$`\\\"'*?[]#~=%\n!"

type template struct {
	r         *replacer
	line      string
	shell     bool
	words     []string // when !shell
	maxPos    int      // the largest n of {n}
	usesSlot  bool
	bareInput bool // no command: each input is a command line
	context   bool // -X: a word that holds {} is repeated for each input
	total     int  // the number of jobs, for {##} and {0#}
	slots     int  // the number of slots, for {0%}
}

func newTemplate(words []string, o *options) (*template, error) {
	t := &template{r: newReplacer(o), line: strings.Join(words, " ")}
	if len(words) == 0 {
		t.bareInput = true
		return t, nil
	}
	if t.r.dynamic != nil {
		if m := t.r.dynamic.FindString(t.line); m != "" && !t.r.re.MatchString(m) {
			return nil, usagef("the replacement string %s of --plus is not built in this runner (see docs/commands.md)", m)
		}
	}
	// --pipe gives each job a block on stdin, and no input to append;
	// --cat and --fifo give the block's file as the input.
	if !t.r.re.MatchString(t.line) && (!o.pipe || o.cat || o.fifo) {
		t.line += " {}"
		if t.r.i != "" {
			t.line = strings.TrimSuffix(t.line, "{}") + t.r.i
		}
	}
	rest := t.r.re.ReplaceAllString(t.line, "")
	t.shell = strings.ContainsAny(rest, shellSpecial)
	if !t.shell {
		t.words = strings.Fields(t.line)
		// A shell builtin or keyword (exit, cd, if, ...) is no program.
		if first := t.words[0]; !t.r.re.MatchString(first) && !isProgram(first) {
			t.shell, t.words = true, nil
		}
	}
	for _, m := range t.r.re.FindAllString(t.line, -1) {
		p := t.r.parse(m)
		switch {
		case p.kind == replSlot || p.kind == replSlot0:
			t.usesSlot = true
		case p.pos < 0:
			return nil, usagef("the replacement string %s does not name an input: they count from {1}", m)
		}
		t.maxPos = max(t.maxPos, p.pos)
		if o.pipe && (p.kind == replTotal || p.kind == replSeq0) {
			return nil, usagef("the replacement string %s cannot be used with --pipe: the number of blocks is not known before the input is read", m)
		}
		if p.pos > 0 && o.multi != "" {
			return nil, usagef("the replacement string %s cannot be used with -X, -m or --xargs, which put many inputs on one line: use {} and its kin", m)
		}
	}
	t.context = o.multi == "X"
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
func (t *template) value(m string, args []string, seq, slot int) []string {
	p := t.r.parse(m)
	var vals []string
	switch p.kind {
	case replSeq:
		return []string{strconv.Itoa(seq)}
	case replSlot:
		return []string{strconv.Itoa(slot)}
	case replTotal:
		return []string{strconv.Itoa(t.total)}
	case replSeq0:
		return []string{zeroPad(seq, t.total)}
	case replSlot0:
		return []string{zeroPad(slot, t.slots)}
	}
	switch {
	case p.pos == 0:
		vals = args
	case p.pos <= len(args):
		vals = []string{args[p.pos-1]}
	default:
		vals = []string{""} // check refuses it before a job runs
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = modify(v, p.mod)
	}
	return out
}

// zeroPad writes n with as many digits as of has.
func zeroPad(n, of int) string {
	s := strconv.Itoa(n)
	if w := len(strconv.Itoa(max(of, 1))); len(s) < w {
		s = strings.Repeat("0", w-len(s)) + s
	}
	return s
}

// The regular expressions of parallel's modifiers.
var (
	lastPart  = regexp.MustCompile(`/[^/]*$`)
	upToDot   = regexp.MustCompile(`^.*\.`)
	twoExt    = regexp.MustCompile(`\.[^/.]*\.[^/.]*$`)
	threeExt  = regexp.MustCompile(`\.[^/.]*\.[^/.]*\.[^/.]*$`)
	twoExtOf  = regexp.MustCompile(`^.*\.([^/.]*\.[^/.]*)$`)
	threeExOf = regexp.MustCompile(`^.*\.([^/.]*\.[^/.]*\.[^/.]*)$`)
)

// modify applies a replacement string's modifier: . drops the extension,
// / keeps the base name, // the directory, /. the base name without
// extension; --plus's .. and ... drop two and three extensions, and a +
// keeps what its form without + drops.
func modify(v, mod string) string {
	switch mod {
	case ".":
		return dropExt(v)
	case "/":
		return baseName(v)
	case "//":
		return dirName(v)
	case "/.":
		return dropExt(baseName(v))
	case "..":
		return twoExt.ReplaceAllString(v, "")
	case "...":
		return threeExt.ReplaceAllString(v, "")
	case "/..":
		return twoExt.ReplaceAllString(baseName(v), "")
	case "/...":
		return threeExt.ReplaceAllString(baseName(v), "")
	case "+/":
		if loc := lastPart.FindStringIndex(v); loc != nil {
			return v[:loc[0]]
		}
		return ""
	case "+.":
		if loc := upToDot.FindStringIndex(v); loc != nil {
			return v[loc[1]:]
		}
		return ""
	case "+..":
		if m := twoExtOf.FindStringSubmatch(v); m != nil {
			return m[1]
		}
		return ""
	case "+...":
		if m := threeExOf.FindStringSubmatch(v); m != nil {
			return m[1]
		}
		return ""
	}
	return v
}

// baseName is what follows the last slash, as parallel's s:.*/:: leaves it.
func baseName(v string) string { return v[strings.LastIndexByte(v, '/')+1:] }

// dirName is the directory part, as Perl's dirname gives it to parallel:
// trailing slashes go first ("dir/" is in "."), a name without a slash
// is in ".", and what is left of slashes alone is "/".
func dirName(v string) string {
	t := strings.TrimRight(v, "/")
	if t == "" && v != "" {
		return "/"
	}
	i := strings.LastIndexByte(t, '/')
	if i < 0 {
		return "."
	}
	if d := strings.TrimRight(t[:i], "/"); d != "" {
		return d
	}
	return "/"
}

// dropExt removes the extension, as parallel's s:\.[^/.]*$:: does: from
// the last dot after the last slash, so that a dotfile's name goes whole
// (".bashrc" becomes "") and a trailing dot goes alone.
func dropExt(v string) string {
	slash := strings.LastIndexByte(v, '/')
	dot := strings.LastIndexByte(v, '.')
	if dot > slash {
		return v[:dot]
	}
	return v
}

// expand returns the job's argv (when the template runs without a shell)
// and its shell line, in which values are quoted (the joblog's and
// --dry-run's form, and what sh -c runs).
func (t *template) expand(args []string, seq, slot int) (argv []string, line string) {
	line = t.lineOf(args, seq, slot)
	if t.bareInput {
		words := strings.Fields(line)
		if strings.ContainsAny(line, shellSpecial) || len(words) == 0 || !isProgram(words[0]) {
			return nil, line
		}
		return words, line
	}
	if t.shell {
		return nil, line
	}
	for _, w := range t.words {
		if t.context && t.hasInput(w) {
			for _, a := range args {
				argv = append(argv, t.expandWord(w, []string{a}, seq, slot)...)
			}
			continue
		}
		argv = append(argv, t.expandWord(w, args, seq, slot)...)
	}
	return argv, line
}

// nonSpace finds the words of a line, for -X's context replace.
var nonSpace = regexp.MustCompile(`\S+`)

// lineOf is the job's shell line. With -X, a word that holds an input's
// replacement string is repeated for each input, joined by spaces.
func (t *template) lineOf(args []string, seq, slot int) string {
	if t.bareInput {
		return strings.Join(args, " ")
	}
	if !t.context {
		return t.quoted(t.line, args, seq, slot)
	}
	return nonSpace.ReplaceAllStringFunc(t.line, func(w string) string {
		if !t.hasInput(w) {
			return t.quoted(w, args, seq, slot)
		}
		each := make([]string, len(args))
		for i, a := range args {
			each[i] = t.quoted(w, []string{a}, seq, slot)
		}
		return strings.Join(each, " ")
	})
}

// quoted replaces the replacement strings of s with their values, each
// quoted for the shell.
func (t *template) quoted(s string, args []string, seq, slot int) string {
	return t.r.re.ReplaceAllStringFunc(s, func(m string) string {
		vals := t.value(m, args, seq, slot)
		for i, v := range vals {
			vals[i] = shellQuote(v)
		}
		return strings.Join(vals, " ")
	})
}

// text replaces the replacement strings of s with their values, as
// they are (--tagstring).
func (t *template) text(s string, args []string, seq, slot int) string {
	return t.r.re.ReplaceAllStringFunc(s, func(m string) string {
		return strings.Join(t.value(m, args, seq, slot), " ")
	})
}

// hasInput reports whether w holds a replacement string of the inputs.
func (t *template) hasInput(w string) bool {
	for _, m := range t.r.re.FindAllString(w, -1) {
		if t.r.parse(m).kind == replArg {
			return true
		}
	}
	return false
}

// expandWord expands one word of the template into argv words, as the
// shell would split its quoted form: a replacement string with several
// values (every input of a job) ends a word at each of them.
func (t *template) expandWord(w string, args []string, seq, slot int) []string {
	words := []string{""}
	last := 0
	for _, loc := range t.r.re.FindAllStringIndex(w, -1) {
		words[len(words)-1] += w[last:loc[0]]
		vals := t.value(w[loc[0]:loc[1]], args, seq, slot)
		if len(vals) > 0 {
			words[len(words)-1] += vals[0]
			words = append(words, vals[1:]...)
		}
		last = loc[1]
	}
	words[len(words)-1] += w[last:]
	return words
}

// shellQuote quotes v for sh, as parallel does: unless it is made of
// letters, digits and - _ . + / only.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "-_.+/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'"'"'`) + "'"
}
