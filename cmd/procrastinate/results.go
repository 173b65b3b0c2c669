package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// resultsTable reports whether --results names a CSV, TSV or JSON file,
// parallel's table forms, which the runner does not build.
func resultsTable(name string) bool {
	for _, ext := range []string{".csv", ".tsv", ".json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// resultFiles are the names of a job's files under --results: its
// stdout, its stderr and its sequence number.
type resultFiles struct{ stdout, stderr, seq string }

// resultsOf names a job's files as parallel does. A --results name
// without replacement strings is a directory, in which each job has
// DIR/1/<value>/2/<value>/.../{seq,stdout,stderr}; a name with
// replacement strings names the stdout file (stderr and seq beside it,
// with .err and .seq added), or a directory when it ends in /.
func (r *runner) resultsOf(d *done) resultFiles {
	name := r.o.results
	if r.t.r.re.MatchString(name) {
		name = r.t.text(name, d.job.args, d.job.seq, d.slot)
		if !strings.HasSuffix(name, "/") {
			return resultFiles{stdout: name, stderr: name + ".err", seq: name + ".seq"}
		}
	} else {
		name = filepath.Join(name, argsAsDirname(d.job.recs))
	}
	return resultFiles{stdout: filepath.Join(name, "stdout"), stderr: filepath.Join(name, "stderr"), seq: filepath.Join(name, "seq")}
}

// argsAsDirname is the path of a job's directory under --results: for
// each value of each record, its column's number and the value, with \
// tab, NUL and / written \\ \t \0 \_, each cut to a file name's length.
func argsAsDirname(recs [][]string) string {
	esc := strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\x00", `\0`, "/", `\_`)
	var parts []string
	for _, rec := range recs {
		for i, v := range rec {
			v = esc.Replace(v)
			if len(v) > 255 {
				v = v[:255]
			}
			parts = append(parts, strconv.Itoa(i+1), v)
		}
	}
	return filepath.Join(parts...)
}

// save writes a job's output to files (--results, --files) instead of
// printing it, and prints the stdout file's name under --files. A file
// that cannot be written is an error of the run.
func (r *runner) save(d *done, tag string) {
	var stdout string
	var err error
	switch {
	case r.o.results != "":
		f := r.resultsOf(d)
		stdout = f.stdout
		err = errors.Join(
			os.MkdirAll(filepath.Dir(f.stdout), 0o755),
			os.WriteFile(f.seq, []byte(strconv.Itoa(d.job.seq)), 0o644),
			moveOutput(d.res.Stdout, d.res.StdoutFile, f.stdout),
			moveOutput(d.res.Stderr, d.res.StderrFile, f.stderr))
	default: // --files: stdout in a file of its own; stderr dropped, as parallel drops it
		var f *os.File
		if f, err = os.CreateTemp("", "par*.par"); err == nil {
			stdout = f.Name()
			err = errors.Join(f.Close(), moveOutput(d.res.Stdout, d.res.StdoutFile, stdout))
		}
		discard(d.res.StderrFile)
	}
	if err != nil {
		discard(d.res.StdoutFile)
		discard(d.res.StderrFile)
		r.outErr = errors.Join(r.outErr, fmt.Errorf("job %d: cannot save its output: %w", d.job.seq, err))
		return
	}
	if r.o.files {
		r.out.WriteString(tag + stdout + "\n")
	}
}

// moveOutput puts a stream's output in the file name: the spool file
// moved there (or copied, from another file system), or what was kept in
// memory.
func moveOutput(mem []byte, spool, name string) error {
	if spool == "" {
		return os.WriteFile(name, mem, 0o644)
	}
	if os.Rename(spool, name) == nil {
		return nil
	}
	defer discard(spool)
	src, err := os.Open(spool)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	return errors.Join(err, dst.Close())
}

// discard removes a spool file, when there is one.
func discard(name string) {
	if name != "" {
		_ = os.Remove(name)
	}
}
