package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/command"
)

// job is one run of the command.
type job struct {
	seq   int
	recs  [][]string // the input records it takes
	args  []string   // their values, one after the other
	stdin []byte     // --pipe: its block
}

// done is a finished job.
type done struct {
	job   job
	slot  int
	line  string
	res   command.Result
	err   error // not an exit status: the job could not run
	start time.Time
	// received is the size of the job's stdout under --line-buffer,
	// which the runner reads as it comes rather than in res.
	received int64
	sent     int // the size of its block under --pipe, the joblog's Send
}

func (d *done) failed() bool { return d.err != nil || !d.res.Success() }

// exitVal and signal are the joblog's columns.
func (d *done) exitVal() int {
	if d.err != nil {
		return 255
	}
	if d.res.Signal != 0 {
		return -1
	}
	return d.res.ExitCode
}

func (d *done) signal() int { return int(d.res.Signal) }

func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	code, err := runAll(args, stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "procrastinate: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) || code == 0 {
			return 255
		}
	}
	return code
}

func runAll(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	o, err := parseArgs(args)
	if err != nil {
		return 255, err
	}
	t, err := newTemplate(o.command, o)
	if err != nil {
		return 255, err
	}
	for _, m := range t.r.re.FindAllString(o.tagstring, -1) {
		if k := t.r.parse(m).kind; k == replSlot || k == replSlot0 {
			t.usesSlot = true
		}
	}
	var jobs []job
	var lines map[int]string // --retry-failed: the joblog's commands
	log, err := readJoblog(o)
	if err != nil {
		return 255, err
	}
	var sp *splitter // --pipe
	resumed := func(seq int) bool {
		e, ok := log[seq]
		return ok && (o.resume || (o.resumeFail && e.exitVal == 0 && e.signal == 0))
	}
	if o.pipe {
		in := stdin
		if len(o.sources) == 1 {
			f, err := os.Open(o.sources[0].file)
			if err != nil {
				return 255, usagef("cannot read the input file %s: %v", o.sources[0].file, err)
			}
			defer f.Close()
			in = f
		}
		sp = &splitter{r: in, block: o.block, records: o.records, recend: []byte(o.recend), recstart: []byte(o.recstart)}
		if o.header != "" {
			sp.headerLines, sp.headerRE, _ = parseHeader(o.header)
		}
	} else if o.retryFailed {
		if o.joblog == "" {
			return 255, usagef("--retry-failed needs --joblog")
		}
		lines = map[int]string{}
		for _, e := range log {
			if e.exitVal != 0 || e.signal != 0 {
				jobs = append(jobs, job{seq: e.seq})
				lines[e.seq] = e.command
			}
		}
	} else {
		srcs, err := readSources(o, stdin)
		if err != nil {
			return 255, err
		}
		recs := combine(o, srcs)
		if o.shuf {
			rand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		}
		t.slots = o.jobs
		if t.slots == 0 {
			t.slots = max(1, min(len(recs), 1024))
		}
		grouped, err := group(o, t, recs, t.slots)
		if err != nil {
			return 255, err
		}
		all := make([][]string, len(grouped))
		for i, g := range grouped {
			all[i] = flatten(g)
		}
		if err := t.check(all); err != nil {
			return 255, err
		}
		t.total = len(grouped)
		for i, g := range grouped {
			seq := i + 1
			if resumed(seq) {
				continue
			}
			jobs = append(jobs, job{seq: seq, recs: g, args: all[i]})
		}
	}
	slots := o.jobs
	switch {
	case slots == 0 && o.pipe:
		slots = 1024
	case slots == 0:
		slots = max(1, min(len(jobs), 1024))
	}
	t.slots = slots
	if t.total == 0 {
		t.total = len(jobs)
	}
	var r *runner
	cmdOf := func(j job, slot int) (command.Cmd, string) {
		var c command.Cmd
		var line string
		if lines != nil {
			line = lines[j.seq]
			c = command.Cmd{Path: line, Shell: true}
		} else {
			var argv []string
			argv, line = t.expand(j.args, j.seq, slot)
			if argv == nil {
				c = command.Cmd{Path: line, Shell: true}
			} else {
				c = command.Cmd{Path: argv[0], Args: argv[1:]}
			}
		}
		if o.pipe && !o.cat && !o.fifo {
			c.Stdin = j.stdin
		}
		if o.ungroup && o.results == "" && !o.files {
			c.Stdout = command.Output{Mode: command.Inherit}
			c.Stderr = command.Output{Mode: command.Inherit}
		} else {
			c.Stdout = command.Output{Mode: command.Spool, Size: 1 << 20}
			c.Stderr = command.Output{Mode: command.Spool, Size: 1 << 20}
		}
		c.Timeout = o.timeout
		if o.timeoutPct > 0 && r != nil {
			c.Timeout = r.medianRuntime() * time.Duration(o.timeoutPct) / 100
		}
		if o.retries > 1 {
			c.Retries = o.retries - 1
		}
		for _, s := range o.termSeq {
			c.Stop = append(c.Stop, command.StopStep{Signal: s.sig, Wait: s.wait})
		}
		c.Limits = command.Limits{AddressSpace: o.limitAS, Nice: o.nice}
		return c, line
	}
	if o.dryRun {
		w := bufio.NewWriter(stdout)
		for seq := 1; sp != nil; seq++ {
			b, err := sp.next()
			for _, warn := range sp.warnings {
				fmt.Fprintf(stderr, "procrastinate: warning: %s\n", warn)
			}
			sp.warnings = nil
			if err == io.EOF {
				break
			}
			if err != nil {
				return 255, errors.Join(err, w.Flush())
			}
			if !resumed(seq) {
				_, line := cmdOf(job{seq: seq, stdin: b}, 1+(seq-1)%slots)
				fmt.Fprintln(w, line)
			}
		}
		for _, j := range jobs {
			_, line := cmdOf(j, 1+(j.seq-1)%slots)
			fmt.Fprintln(w, line)
		}
		return 0, w.Flush()
	}

	out := bufio.NewWriterSize(stdout, 64<<10)
	if o.results != "" && !t.r.re.MatchString(o.results) {
		if err := os.MkdirAll(o.results, 0o755); err != nil {
			return 255, fmt.Errorf("cannot make the --results directory: %w", err)
		}
	}
	jlFile, err := openJoblog(o)
	if err != nil {
		return 255, err
	}
	var jl io.Writer
	switch {
	case o.joblog == "-":
		jl = out
		_, _ = out.WriteString(joblogHeader)
	case jlFile != nil:
		jl = jlFile
	}
	var ev *os.File
	if o.events != "" {
		if ev, err = os.Create(o.events); err != nil {
			return 255, fmt.Errorf("cannot write the events file: %w", err)
		}
		defer ev.Close()
	}
	if len(jobs) == 0 && sp == nil {
		return 0, errors.Join(out.Flush(), closeJoblog(jlFile))
	}
	p, err := startPool(slots)
	if err != nil {
		return 255, err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	r = &runner{o: o, t: t, out: out, stderr: stderr, jl: jl, ev: ev, total: len(jobs), pending: map[int]*done{}}
	if len(jobs) > 0 {
		r.nextOut = jobs[0].seq
	}
	r.order = make([]int, len(jobs))
	for i, j := range jobs {
		r.order[i] = j.seq
	}
	prog := newProgress(o, stderr, len(jobs))
	var fd *feed
	var pipeDir string // --cat, --fifo: the blocks' files
	if sp != nil {
		if o.cat || o.fifo {
			if pipeDir, err = os.MkdirTemp("", "procrastinate-pipe-"); err != nil {
				p.kill()
				p.stop()
				return 255, fmt.Errorf("--cat, --fifo: cannot make a directory for the blocks: %w", err)
			}
			defer os.RemoveAll(pipeDir)
		}
		fd = startFeed(sp)
		defer close(fd.stop)
	}
	more, nextSeq := fd != nil, 1 // --pipe: blocks still to come, and the next one's seq
	var readErr error
	var mux *lineMux
	var lineDir string
	if o.lineBuffer && !o.ungroup && o.results == "" && !o.files {
		if lineDir, err = os.MkdirTemp("", "procrastinate-lines-"); err != nil {
			p.kill()
			p.stop()
			return 255, fmt.Errorf("--line-buffer: cannot make a directory for the jobs' FIFOs: %w", err)
		}
		defer os.RemoveAll(lineDir)
		mux = newLineMux(out, stderr, o.keepOrder, r.order)
		r.lines = mux
		if jl == out {
			r.jl = mux
		}
	}

	window := slots
	free := make([]int, 0, slots)
	for s := slots; s >= 1; s-- {
		free = append(free, s)
	}
	finished := make(chan *done, window)
	inflight, next := 0, 0
	var lastStart time.Time
	var caught os.Signal
	var recheck <-chan time.Time // while --load or --memfree holds jobs back
	for ((next < len(jobs) || more) && !r.halting && caught == nil) || inflight > 0 {
		canStart := next < len(jobs) && inflight < window && !r.halting && caught == nil && (len(free) > 0 || !t.usesSlot)
		recheck = nil
		if canStart && !roomFor(o) {
			canStart, recheck = false, time.After(time.Second)
		}
		if canStart && o.delay > 0 && !lastStart.IsZero() {
			if wait := o.delay - time.Since(lastStart); wait > 0 {
				select {
				case d := <-finished:
					inflight--
					free = append(free, d.slot)
					r.finish(d, p)
					prog.update(r, inflight)
				case <-time.After(wait):
				}
				continue
			}
		}
		if canStart {
			j := jobs[next]
			next++
			slot := 1 + (j.seq-1)%slots
			if t.usesSlot {
				slot = free[len(free)-1]
				free = free[:len(free)-1]
			}
			var bf *blockFile
			if pipeDir != "" {
				var err error
				if bf, err = newBlockFile(pipeDir, j.seq, j.stdin, o.fifo); err != nil {
					inflight++
					d := &done{job: j, slot: slot, line: t.line, start: time.Now(), err: err}
					go func() { finished <- d }()
					continue
				}
				j.args = []string{bf.path}
			}
			c, line := cmdOf(j, slot)
			d := &done{job: j, slot: slot, line: line, start: time.Now(), sent: len(j.stdin)}
			d.job.stdin, jobs[next-1].stdin = nil, nil // the command has it now
			lastStart = d.start
			inflight++
			var lj *lineJob
			if mux != nil {
				if o.verbose {
					mux.lines(j.seq, false, []byte(line+"\n"))
				}
				if lj, d.err = mux.startLineJob(lineDir, j.seq, r.tagOf(d)); d.err != nil {
					if bf != nil {
						bf.remove()
					}
					go func() { finished <- d }()
					continue
				}
				c.Path, c.Args, c.Shell = lj.redirect(line), nil, true
				c.Stdout, c.Stderr = command.Output{Mode: command.Discard}, command.Output{Mode: command.Discard}
			}
			f := p.submit(c)
			go func() {
				d.res, d.err = f.Value()
				var ee *command.ExitError
				if errors.As(d.err, &ee) {
					d.res, d.err = ee.Result, nil
				}
				if lj != nil {
					lj.end()
					d.received = lj.received.Load()
				}
				if bf != nil {
					bf.remove()
				}
				finished <- d
			}()
			prog.update(r, inflight)
			continue
		}
		var items <-chan feedItem // --pipe: the next block, when a job could take it
		if more && next == len(jobs) && inflight < window && !r.halting && caught == nil {
			items = fd.items
		}
		if mux == nil && len(finished) == 0 && out.Buffered() > 0 {
			// Nothing to print now: what was printed goes out before the
			// wait, so that it is seen while the run goes on. (Under
			// --line-buffer, the lines' writer owns out and flushes it.)
			_ = out.Flush()
		}
		select {
		case d := <-finished:
			inflight--
			if t.usesSlot {
				free = append(free, d.slot)
			}
			r.finish(d, p)
			prog.update(r, inflight)
		case caught = <-sigs:
			fmt.Fprintf(stderr, "procrastinate: %v received: the running jobs are stopped, and no new ones started\n", caught)
			r.stopped = true
			p.kill()
		case <-prog.tick():
			prog.update(r, inflight)
		case <-recheck:
		case it, ok := <-items:
			switch {
			case !ok:
				more, readErr = false, fd.err
			case it.warn != "":
				fmt.Fprintf(stderr, "procrastinate: warning: %s\n", it.warn)
			case !resumed(nextSeq):
				jobs = append(jobs, job{seq: nextSeq, stdin: it.block})
				r.addJob(nextSeq)
				nextSeq++
			default:
				nextSeq++
			}
		}
	}
	p.stop()
	prog.end(r)
	err = errors.Join(readErr, r.outErr, out.Flush(), closeJoblog(jlFile))
	if caught != nil {
		return 128 + int(caught.(syscall.Signal)), err
	}
	return r.exitCode(), err
}

// runner keeps the state of a run that the main loop does not.
type runner struct {
	o        *options
	t        *template
	lines    *lineMux // --line-buffer; nil without it
	out      *bufio.Writer
	stderr   io.Writer
	jl       io.Writer
	ev       *os.File
	total    int
	doneN    int
	failedN  int
	okN      int
	halting  bool
	stopped  bool // a signal stopped the run
	haltCode int
	haltSet  bool
	order    []int // the seqs of the jobs to run, in order
	outIdx   int
	nextOut  int
	pending  map[int]*done
	cpu      time.Duration
	outErr   error           // output that could not be saved (--results, --files)
	runtimes []time.Duration // of the jobs that succeeded, sorted
}

// addJob counts a job that --pipe made of a block, in the order of the
// output.
func (r *runner) addJob(seq int) {
	r.total++
	r.order = append(r.order, seq)
	if r.lines != nil {
		r.lines.add(seq)
	}
}

// medianRuntime is the median run time of the jobs that succeeded so
// far, 0 (no timeout) before any did.
func (r *runner) medianRuntime() time.Duration {
	if len(r.runtimes) == 0 {
		return 0
	}
	return r.runtimes[len(r.runtimes)/2]
}

// finish handles a finished job: joblog, events, output, --halt.
func (r *runner) finish(d *done, p *pool) {
	r.doneN++
	if d.failed() {
		r.failedN++
	} else {
		r.okN++
		i, _ := slices.BinarySearch(r.runtimes, d.res.Duration)
		r.runtimes = slices.Insert(r.runtimes, i, d.res.Duration)
	}
	r.cpu += d.res.UserCPU + d.res.SystemCPU
	// A job killed on purpose (--halt now, a signal) is left out of the
	// logs, as parallel does.
	killed := d.err != nil && (r.halting || r.stopped)
	if d.err != nil && !killed {
		fmt.Fprintf(r.stderr, "procrastinate: job %d (%s): %v\n", d.job.seq, d.line, d.err)
	}
	if r.jl != nil && !killed {
		start := d.res.Start
		if start.IsZero() {
			start = d.start
		}
		fmt.Fprintf(r.jl, "%d\t:\t%.3f\t%10.3f\t%d\t%d\t%d\t%d\t%s\n", d.job.seq,
			float64(start.UnixMicro())/1e6, d.res.Duration.Seconds(), d.sent, outputSize(d.res)+d.received, d.exitVal(), d.signal(), d.line)
	}
	if r.ev != nil && !killed {
		writeEvent(r.ev, d)
	}
	if r.lines != nil {
		r.lines.jobDone(d.job.seq)
	} else if r.o.keepOrder {
		r.pending[d.job.seq] = d
		for r.outIdx < len(r.order) {
			next, ok := r.pending[r.order[r.outIdx]]
			if !ok {
				break
			}
			delete(r.pending, next.job.seq)
			r.outIdx++
			r.print(next)
		}
	} else {
		r.print(d)
	}
	if d.res.Stopped && !killed {
		fmt.Fprintf(r.stderr, "procrastinate: warning: this job was killed because it timed out:\n%s\n", d.line)
	}
	r.checkHalt(d, p)
}

func outputSize(res command.Result) int64 {
	if res.StdoutFile != "" {
		if st, err := os.Stat(res.StdoutFile); err == nil {
			return st.Size()
		}
	}
	return int64(len(res.Stdout))
}

// print writes a job's output: its stdout, then its stderr, each tagged
// with its inputs under --tag.
func (r *runner) print(d *done) {
	if r.o.verbose && r.o.results == "" {
		r.out.WriteString(d.line + "\n")
	}
	tag := r.tagOf(d)
	if r.o.results != "" || r.o.files {
		r.save(d, tag)
		return
	}
	emit(r.out, d.res.Stdout, d.res.StdoutFile, tag)
	if len(d.res.Stderr) > 0 || d.res.StderrFile != "" {
		_ = r.out.Flush()
		w := bufio.NewWriter(r.stderr)
		emit(w, d.res.Stderr, d.res.StderrFile, tag)
		_ = w.Flush()
	}
	if r.o.ungroup {
		_ = r.out.Flush()
	}
}

// tagOf is the tag of a job's lines (--tag, --tagstring), tab included;
// "" without one.
func (r *runner) tagOf(d *done) string {
	switch {
	case r.o.tagstring != "":
		return r.t.text(r.o.tagstring, d.job.args, d.job.seq, d.slot) + "\t"
	case r.o.tag:
		return strings.Join(d.job.args, " ") + "\t"
	}
	return ""
}

// emit writes mem, or the file that holds all of it, tagged, and removes
// the file.
func emit(w *bufio.Writer, mem []byte, file, tag string) {
	if file != "" {
		f, err := os.Open(file)
		if err == nil {
			if tag == "" {
				_, _ = io.Copy(w, f)
			} else {
				sc := bufio.NewReader(f)
				for {
					line, err := sc.ReadBytes('\n')
					if len(line) > 0 {
						w.WriteString(tag)
						w.Write(line)
					}
					if err != nil {
						break
					}
				}
			}
			f.Close()
		}
		_ = os.Remove(file)
		return
	}
	if tag == "" {
		w.Write(mem)
		return
	}
	for len(mem) > 0 {
		i := bytes.IndexByte(mem, '\n')
		if i < 0 {
			i = len(mem) - 1
		}
		w.WriteString(tag)
		w.Write(mem[:i+1])
		mem = mem[i+1:]
	}
}

// checkHalt applies --halt after a job.
func (r *runner) checkHalt(d *done, p *pool) {
	h := r.o.halt
	if h.on == "" || r.halting {
		return
	}
	var n int
	switch h.on {
	case "fail":
		if !d.failed() {
			return
		}
		n = r.failedN
	case "success":
		if d.failed() {
			return
		}
		n = r.okN
	case "done":
		n = r.doneN
	}
	hit := h.count > 0 && n >= h.count || h.percent > 0 && float64(n)*100 >= h.percent*float64(r.total)
	if !hit {
		return
	}
	r.halting, r.haltSet = true, true
	if h.on == "fail" {
		r.haltCode = d.exitVal()
		if d.res.Signal != 0 {
			r.haltCode = 128 + d.signal()
		}
		fmt.Fprintf(r.stderr, "procrastinate: this job failed:\n%s\n", d.line)
	}
	if h.when == "now" {
		p.kill()
	}
}

// exitCode is parallel's: the number of failed jobs up to 100, 101 past
// it; the failing job's status when --halt stopped the run on a failure.
func (r *runner) exitCode() int {
	if r.haltSet && r.o.halt.on == "fail" {
		return r.haltCode
	}
	if r.haltSet {
		return 0
	}
	return min(r.failedN, 101)
}

type event struct {
	Seq       int       `json:"seq"`
	Command   string    `json:"command"`
	Start     time.Time `json:"start"`
	Runtime   float64   `json:"runtime_s"`
	ExitCode  int       `json:"exit_code"`
	Signal    int       `json:"signal"`
	UserCPU   float64   `json:"user_cpu_s"`
	SystemCPU float64   `json:"system_cpu_s"`
	MaxRSS    int64     `json:"max_rss_bytes"`
	Tries     int       `json:"tries"`
	Stopped   bool      `json:"timed_out,omitempty"`
	Leftovers int       `json:"leftovers_killed,omitempty"`
	Stderr    string    `json:"stderr_tail,omitempty"`
	Error     string    `json:"error,omitempty"`
}

func writeEvent(w io.Writer, d *done) {
	e := event{Seq: d.job.seq, Command: d.line, Start: d.res.Start, Runtime: d.res.Duration.Seconds(),
		ExitCode: d.exitVal(), Signal: d.signal(), UserCPU: d.res.UserCPU.Seconds(), SystemCPU: d.res.SystemCPU.Seconds(),
		MaxRSS: d.res.MaxRSS, Tries: d.res.Tries, Stopped: d.res.Stopped, Leftovers: d.res.Leftovers}
	if tail := d.res.Stderr; len(tail) > 0 {
		if len(tail) > 4096 {
			tail = tail[len(tail)-4096:]
		}
		e.Stderr = string(tail)
	}
	if d.err != nil {
		e.Error = d.err.Error()
	}
	b, _ := json.Marshal(e)
	_, _ = w.Write(append(b, '\n'))
}

// logEntry is a line of a joblog, for --resume and --retry-failed.
type logEntry struct {
	seq, exitVal, signal int
	command              string
}

// readJoblog reads the joblog for --resume, --resume-failed and
// --retry-failed; nil when none of them is given or the file does not
// exist yet.
func readJoblog(o *options) (map[int]logEntry, error) {
	if !o.resume && !o.resumeFail && !o.retryFailed {
		return nil, nil
	}
	if o.joblog == "" {
		return nil, usagef("--resume, --resume-failed and --retry-failed need --joblog")
	}
	data, err := os.ReadFile(o.joblog)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, usagef("cannot read the joblog %s: %v", o.joblog, err)
	}
	log := map[int]logEntry{}
	for i, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if i == 0 && strings.HasPrefix(l, "Seq\t") || l == "" {
			continue
		}
		f := strings.SplitN(l, "\t", 9)
		if len(f) != 9 {
			return nil, usagef("the joblog %s is malformed at line %d: want 9 tab-separated columns, got %d: %q", o.joblog, i+1, len(f), l)
		}
		seq, err1 := strconv.Atoi(f[0])
		ev, err2 := strconv.Atoi(f[6])
		sig, err3 := strconv.Atoi(f[7])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, usagef("the joblog %s is malformed at line %d: Seq, Exitval and Signal must be numbers: %q", o.joblog, i+1, l)
		}
		log[seq] = logEntry{seq: seq, exitVal: ev, signal: sig, command: f[8]}
	}
	return log, nil
}

// openJoblog opens the joblog: appended to on --resume and its kin, made
// anew with parallel's header otherwise.
func openJoblog(o *options) (*os.File, error) {
	if o.joblog == "" || o.joblog == "-" {
		return nil, nil
	}
	if o.resume || o.resumeFail || o.retryFailed {
		f, err := os.OpenFile(o.joblog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("cannot write the joblog: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.Size() == 0 {
			_, _ = f.WriteString(joblogHeader)
		}
		return f, nil
	}
	f, err := os.Create(o.joblog)
	if err != nil {
		return nil, fmt.Errorf("cannot write the joblog: %w", err)
	}
	_, err = f.WriteString(joblogHeader)
	return f, err
}

const joblogHeader = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"

func closeJoblog(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
