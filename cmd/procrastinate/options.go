package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the runner's settings, as the flags set them.
type options struct {
	jobs        int
	keepOrder   bool
	tag         bool
	bar, eta    bool
	joblog      string
	resume      bool
	resumeFail  bool
	retryFailed bool
	timeout     time.Duration
	timeoutPct  float64 // --timeout N%: of the median run time of the jobs that succeeded
	termSeq     []stopStep
	retries     int
	halt        halt
	delay       time.Duration
	argFiles    []string
	null        bool
	delim       string
	delimSet    bool
	colsep      string
	maxArgs     int
	maxArgsSet  bool
	multi       string // "X", "m" or "xargs": as many inputs on a line as fit
	maxChars    int    // -s: the longest line; 0 when not given
	shuf        bool   // --shuf: run the inputs in a random order
	tagstring   string // --tagstring: the tag, with replacement strings
	results     string // --results: where to save each job's output
	files       bool   // --files: print the names of stdout's files
	lineBuffer  bool   // --line-buffer: print whole lines as they come
	pipe        bool   // --pipe: the input in blocks on the jobs' stdin
	block       int    // --block: the size of a block
	recend      string // --recend: the end of a record
	recstart    string // --recstart: the start of a record
	recSet      bool   // --recend or --recstart given
	records     int    // -N: records a block, with --pipe
	header      string // --header, with --pipe
	cat, fifo   bool   // --cat, --fifo: the block in a file, named by {}
	dryRun      bool
	ungroup     bool
	link        bool
	verbose     bool
	limitAS     uint64
	load        float64 // --load: start no job while the load average is at or above it; 0: no bound
	memfree     uint64  // --memfree: start no job while less memory than this is available
	nice        int
	events      string
	replace     string // -I: the string that stands for {}
	plus        bool   // --plus: more replacement strings
	command     []string
	sources     []source
}

type stopStep struct {
	sig  syscall.Signal
	wait time.Duration
}

// source is one input source: the arguments after :::, or a file.
type source struct {
	args []string // for :::
	file string   // for :::: and -a; "-" is stdin
}

// halt is --halt: when to stop.
type halt struct {
	when    string // "", "now", "soon"
	on      string // "fail", "success", "done"
	count   int
	percent float64
}

// usageError is a mistake on the command line: parallel's exit status 255.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// valueFlags take a value: as the next argument, after "=", or glued to a
// one-letter flag (-j4).
var valueFlags = map[string]string{
	"-j": "jobs", "--jobs": "jobs", "-P": "jobs", "--max-procs": "jobs",
	"-a": "arg-file", "--arg-file": "arg-file",
	"-d": "delimiter", "--delimiter": "delimiter",
	"-C": "colsep", "--colsep": "colsep",
	"-n": "max-args", "--max-args": "max-args",
	"--joblog": "joblog", "--timeout": "timeout", "--term-seq": "term-seq",
	"--retries": "retries", "--halt": "halt", "--halt-on-error": "halt",
	"--delay": "delay", "--limit-as": "limit-as", "--nice": "nice",
	"--events": "events", "--load": "load", "--memfree": "memfree",
	"-I": "replace",
	"-s": "max-chars", "--max-chars": "max-chars", "-N": "records",
	"--block": "block", "--block-size": "block", "--recend": "recend", "--recstart": "recstart", "--header": "header", "--tagstring": "tagstring",
	"--results": "results", "--res": "results",
}

var boolFlags = map[string]string{
	"-k": "keep-order", "--keep-order": "keep-order", "--tag": "tag",
	"--bar": "bar", "--eta": "eta", "--dry-run": "dry-run",
	"-0": "null", "--null": "null", "--resume": "resume",
	"--resume-failed": "resume-failed", "--retry-failed": "retry-failed",
	"-u": "ungroup", "--ungroup": "ungroup", "--link": "link", "--xapply": "link",
	"-v": "verbose", "--will-cite": "", "--no-notice": "", "--gnu": "",
	"--plus": "plus", "--shuf": "shuf", "--files": "files", "--output-as-files": "files",
	"--line-buffer": "line-buffer", "--lb": "line-buffer",
	"--pipe": "pipe", "--spreadstdin": "pipe", "--cat": "cat", "--fifo": "fifo", "-X": "X", "-m": "m", "--xargs": "xargs",
}

// notBuilt are parallel's flags that this runner does not have; they get
// a clear error instead of "unknown".
var notBuilt = map[string]bool{
	"-S": true, "--sshlogin": true,
	"--group": false, "--tmux": true,
	"--semaphore": true, "--sem": true,
	"-q": true, "--quote": true,
	"--pipe-part": true, "--round-robin": true, "--regexp": true, "--rrs": true, "--remove-rec-sep": true,
	"--block-timeout": true, "--bt": true,
}

func parseArgs(args []string) (*options, error) {
	o := &options{jobs: runtime.NumCPU(), maxArgs: 1, delim: "\n"}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if a == ":::" || a == "::::" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, value, hasValue := a, "", false
		if strings.HasPrefix(a, "--") {
			if k := strings.IndexByte(a, '='); k > 0 {
				name, value, hasValue = a[:k], a[k+1:], true
			}
		} else if len(a) > 2 {
			if _, ok := valueFlags[a[:2]]; ok {
				name, value, hasValue = a[:2], a[2:], true
			}
		}
		if key, ok := boolFlags[name]; ok && !hasValue {
			o.setBool(key)
			continue
		}
		key, ok := valueFlags[name]
		if !ok {
			if notBuilt[name] {
				return nil, usagef("the option %s of GNU parallel is not built in this runner (see docs/commands.md)", name)
			}
			return nil, usagef("unknown option: %s", a)
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("the option %s needs a value", name)
			}
			i++
			value = args[i]
		}
		if err := o.set(key, value); err != nil {
			return nil, err
		}
	}
	for ; i < len(args) && args[i] != ":::" && args[i] != "::::"; i++ {
		o.command = append(o.command, args[i])
	}
	for i < len(args) {
		sep := args[i]
		i++
		var vals []string
		for ; i < len(args) && args[i] != ":::" && args[i] != "::::"; i++ {
			vals = append(vals, args[i])
		}
		if sep == ":::" {
			o.sources = append(o.sources, source{args: vals})
			continue
		}
		if len(vals) == 0 {
			return nil, usagef(":::: needs a file")
		}
		for _, f := range vals {
			o.sources = append(o.sources, source{file: f})
		}
	}
	for _, f := range o.argFiles {
		o.sources = append(o.sources, source{file: f})
	}
	if err := o.checkPipe(); err != nil {
		return nil, err
	}
	if len(o.command) == 0 && len(o.sources) == 0 && !o.retryFailed {
		return nil, usagef("no command given, and no input: usage: procrastinate [options] command [arguments] (::: arguments | :::: files)...")
	}
	return o, nil
}

// checkPipe refuses what --pipe cannot take, and what only --pipe takes.
func (o *options) checkPipe() error {
	if !o.pipe {
		switch {
		case o.records > 0:
			return usagef("-N is built for --pipe only in this runner; use -n (see docs/commands.md)")
		case o.header != "":
			return usagef("--header is built for --pipe only in this runner (see docs/commands.md)")
		}
		return nil
	}
	if !o.recSet {
		o.recend = "\n"
	}
	if o.block == 0 {
		o.block = 1 << 20
	}
	files := 0
	for _, s := range o.sources {
		if s.args != nil {
			return usagef("--pipe reads its input from stdin, -a FILE or :::: FILE, not from :::")
		}
		files++
	}
	switch {
	case files > 1:
		return usagef("--pipe reads one input: stdin, -a FILE or :::: FILE")
	case o.bar || o.eta || o.shuf:
		return usagef("--pipe cannot be used with --bar, --eta or --shuf: the number of blocks is not known before the input is read")
	case o.multi != "":
		return usagef("--pipe cannot be used with -X, -m or --xargs")
	case o.retryFailed:
		return usagef("--pipe cannot be used with --retry-failed: the blocks are not in the joblog")
	}
	return nil
}

func (o *options) setBool(key string) {
	switch key {
	case "keep-order":
		o.keepOrder = true
	case "tag":
		o.tag = true
	case "bar":
		o.bar = true
	case "eta":
		o.eta = true
	case "dry-run":
		o.dryRun = true
	case "null":
		o.null, o.delim, o.delimSet = true, "\x00", true
	case "resume":
		o.resume = true
	case "resume-failed":
		o.resumeFail = true
	case "retry-failed":
		o.retryFailed = true
	case "ungroup":
		o.ungroup = true
	case "link":
		o.link = true
	case "verbose":
		o.verbose = true
	case "plus":
		o.plus = true
	case "X", "m", "xargs":
		o.multi = key
	case "shuf":
		o.shuf = true
	case "files":
		o.files = true
	case "line-buffer":
		o.lineBuffer = true
	case "pipe":
		o.pipe = true
	case "cat":
		o.pipe, o.cat = true, true
	case "fifo":
		o.pipe, o.fifo = true, true
	}
}

func (o *options) set(key, v string) error {
	var err error
	switch key {
	case "jobs":
		o.jobs, err = parseJobs(v)
	case "arg-file":
		o.argFiles = append(o.argFiles, v)
	case "delimiter":
		o.delim, o.delimSet = unescape(v), true
	case "colsep":
		o.colsep = v
	case "max-args":
		o.maxArgs, err = strconv.Atoi(v)
		if err == nil && o.maxArgs < 1 {
			err = fmt.Errorf("must be 1 or more")
		}
		o.maxArgsSet = true
	case "max-chars":
		var n uint64
		n, err = parseSize(v)
		switch {
		case err == nil && n < 1:
			err = fmt.Errorf("must be 1 or more")
		case err == nil && n > maxLine:
			err = fmt.Errorf("must be at most %d, the longest line a command can take", maxLine)
		}
		o.maxChars = int(n)
	case "joblog":
		o.joblog = v
	case "timeout":
		if strings.HasSuffix(v, "%") {
			o.timeoutPct, err = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err == nil && o.timeoutPct <= 0 {
				err = fmt.Errorf("must be more than 0%%")
			}
			break
		}
		o.timeout, err = parseDuration(v)
		if err == nil && o.timeout <= 0 {
			err = fmt.Errorf("must be more than 0")
		}
	case "term-seq":
		o.termSeq, err = parseTermSeq(v)
	case "retries":
		o.retries, err = strconv.Atoi(v)
	case "halt":
		o.halt, err = parseHalt(v)
	case "delay":
		o.delay, err = parseDuration(v)
	case "limit-as":
		o.limitAS, err = parseSize(v)
	case "nice":
		o.nice, err = strconv.Atoi(v)
	case "events":
		o.events = v
	case "tagstring":
		o.tagstring = v
	case "block":
		o.block, err = parseUnits(v)
	case "recend":
		o.recend, o.recSet = unescape(v), true
	case "recstart":
		o.recstart, o.recSet = unescape(v), true
	case "records":
		o.records, err = strconv.Atoi(v)
		if err == nil && o.records < 1 {
			err = fmt.Errorf("must be 1 or more")
		}
	case "header":
		_, _, err = parseHeader(v)
		o.header = v
	case "results":
		if resultsTable(v) {
			return usagef("--results %s: the CSV, TSV and JSON forms of --results are not built in this runner (see docs/commands.md); name a directory", v)
		}
		o.results = v
	case "replace":
		if v == "" {
			err = fmt.Errorf("want a string to stand for the input")
		}
		o.replace = v
	case "load":
		if strings.HasSuffix(v, "%") {
			var p float64
			p, err = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			o.load = p / 100 * float64(runtime.NumCPU())
		} else {
			o.load, err = strconv.ParseFloat(v, 64)
		}
		if err == nil && o.load <= 0 {
			err = fmt.Errorf("must be more than 0")
		}
	case "memfree":
		o.memfree, err = parseSize(v)
	}
	if err != nil {
		return usagef("--%s %q: %v", key, v, err)
	}
	return nil
}

// parseJobs reads -j: N, N% of the CPUs, +N or -N beside their count; 0
// runs every job at once.
func parseJobs(v string) (int, error) {
	cpus := runtime.NumCPU()
	var n int
	var err error
	switch {
	case strings.HasSuffix(v, "%"):
		var p float64
		p, err = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		n = int(float64(cpus) * p / 100)
	case strings.HasPrefix(v, "+"):
		n, err = strconv.Atoi(v[1:])
		n += cpus
	case strings.HasPrefix(v, "-"):
		n, err = strconv.Atoi(v[1:])
		n = cpus - n
	default:
		n, err = strconv.Atoi(v)
		if err == nil && n == 0 {
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("want N, N%%, +N or -N")
	}
	return max(n, 1), nil
}

// parseDuration reads parallel's durations: seconds, with an optional
// unit (s, m, h, d) after each number: 30, 1.5, 2m30s.
func parseDuration(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	var total time.Duration
	rest := v
	for rest != "" {
		k := strings.IndexAny(rest, "smhd")
		if k <= 0 {
			return 0, fmt.Errorf("want seconds, or a number with s, m, h or d")
		}
		f, err := strconv.ParseFloat(rest[:k], 64)
		if err != nil {
			return 0, fmt.Errorf("want seconds, or a number with s, m, h or d")
		}
		unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[rest[k]]
		total += time.Duration(f * float64(unit))
		rest = rest[k+1:]
	}
	return total, nil
}

// parseSize reads a size in bytes with an optional k, M, G or T (powers of 1024).
func parseSize(v string) (uint64, error) {
	mult := uint64(1)
	if v != "" {
		switch v[len(v)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			v = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want a number of bytes, with k, M, G or T")
	}
	return n * mult, nil
}

// parseTermSeq reads --term-seq: signal,ms,signal,ms,...
func parseTermSeq(v string) ([]stopStep, error) {
	f := strings.Split(v, ",")
	var steps []stopStep
	for i := 0; i < len(f); i += 2 {
		sig, ok := signalByName(f[i])
		if !ok {
			return nil, fmt.Errorf("%q is not a signal", f[i])
		}
		s := stopStep{sig: sig}
		if i+1 < len(f) {
			ms, err := strconv.Atoi(f[i+1])
			if err != nil || ms < 0 {
				return nil, fmt.Errorf("%q is not a number of milliseconds", f[i+1])
			}
			s.wait = time.Duration(ms) * time.Millisecond
		}
		steps = append(steps, s)
	}
	return steps, nil
}

func signalByName(s string) (syscall.Signal, bool) {
	s = strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), true
	}
	names := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
		"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE,
		"ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM, "CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP}
	sig, ok := names[s]
	return sig, ok
}

// parseHalt reads --halt: now|soon,fail|success|done=N|N%, or parallel's
// old numbers 0, 1, 2.
func parseHalt(v string) (halt, error) {
	switch v {
	case "0", "never":
		return halt{}, nil
	case "1":
		return halt{when: "soon", on: "fail", count: 1}, nil
	case "2":
		return halt{when: "now", on: "fail", count: 1}, nil
	}
	when, rest, ok := strings.Cut(v, ",")
	if !ok || (when != "now" && when != "soon") {
		return halt{}, fmt.Errorf("want now|soon,fail|success|done=N|N%%")
	}
	on, n, ok := strings.Cut(rest, "=")
	if !ok || (on != "fail" && on != "success" && on != "done") {
		return halt{}, fmt.Errorf("want now|soon,fail|success|done=N|N%%")
	}
	h := halt{when: when, on: on}
	if strings.HasSuffix(n, "%") {
		p, err := strconv.ParseFloat(strings.TrimSuffix(n, "%"), 64)
		if err != nil || p <= 0 || p > 100 {
			return halt{}, fmt.Errorf("want a percentage above 0 and at most 100")
		}
		h.percent = p
	} else {
		c, err := strconv.Atoi(n)
		if err != nil || c < 1 {
			return halt{}, fmt.Errorf("want a count of 1 or more")
		}
		h.count = c
	}
	return h, nil
}

// unescape reads -d's backslash escapes: \n, \t, \0, \\.
func unescape(s string) string {
	r := strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\0`, "\x00", `\\`, `\`)
	return r.Replace(s)
}

var _ = os.Stdin
