// Command benchtable reads the raw output of bench/run.sh (lines in the
// format of go test -bench, cut into rounds by "# round N" lines) and
// prints one Markdown table: for each benchmark, the median over the
// rounds of each metric asked for, and its ratio to each reference.
//
// A ratio is taken within each round, this benchmark's figure over the
// reference's in the same round, and the table gives the median of those
// ratios with the lowest and the highest. On a machine whose speed drifts
// (a shared one), that is steadier than a ratio of two medians. When a
// benchmark appears several times in one round (go test -count), its k-th
// run is paired with the reference's k-th.
//
// A reference is a benchmark's name, or key=value: the benchmark whose
// name is this one's with the key's value replaced, so that
// -ref mode=goroutine sets TaskSize/work=1ms/mode=fresh beside
// TaskSize/work=1ms/mode=goroutine.
//
// With -pivot KEY, the values of that key become columns: one row for
// TaskSize/work=1ms, say, with a column for each mode's figure and for
// each mode's ratio to the reference.
//
//	benchtable -metric tasks/s -ref GoReexec raw.txt
//	benchtable -pivot mode -metric cpu-µs/task -ratio wall-µs/task -ratio cpu-µs/task -ref mode=goroutine raw.txt
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// list is a flag that may be given several times.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var metrics, ratios, refs list
	flag.Var(&metrics, "metric", "a unit to show the median of (repeatable; default: every unit found)")
	flag.Var(&ratios, "ratio", "a unit to take ratios of (repeatable; default: the first -metric)")
	flag.Var(&refs, "ref", "a reference: a benchmark's name, or key=value (repeatable)")
	pivot := flag.String("pivot", "", "a key of the benchmarks' names whose values become columns")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchtable [-metric UNIT]... [-ratio UNIT]... [-ref NAME|KEY=VALUE]... [-pivot KEY] FILE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	all, err := parse(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	if len(metrics) == 0 {
		metrics = all.units
	}
	if len(ratios) == 0 && len(refs) > 0 && len(metrics) > 0 {
		ratios = metrics[:1]
	}
	if err := all.table(os.Stdout, spec{metrics, ratios, refs, *pivot}); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// results are the benchmarks of a file: for each name, its figures in
// each run, a run being known by its round and, when a name runs more than
// once in a round, its place among them ("round/k").
type results struct {
	names  []string                                 // in the order they first appear
	units  []string                                 // the same
	rounds []string                                 // every run key, in order
	runs   map[string]map[string]map[string]float64 // name, run key, unit
}

var (
	roundLine = regexp.MustCompile(`^#\s*round\b`)
	procs     = regexp.MustCompile(`-\d+$`) // the GOMAXPROCS suffix
)

// parse reads raw benchmark output. Lines that are neither a round mark
// nor a benchmark's result are skipped, as benchstat skips them.
func parse(r io.Reader) (results, error) {
	res := results{runs: map[string]map[string]map[string]float64{}}
	round := 0
	seen := map[string]int{} // how often each name ran in this round
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if roundLine.MatchString(line) {
			round++
			clear(seen)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procs.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		vals := map[string]float64{}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return res, fmt.Errorf("%q: %q is not a number", line, f[i])
			}
			vals[f[i+1]] = v
			if !slices.Contains(res.units, f[i+1]) {
				res.units = append(res.units, f[i+1])
			}
		}
		key := fmt.Sprintf("%d/%d", round, seen[name])
		seen[name]++
		if res.runs[name] == nil {
			res.names = append(res.names, name)
			res.runs[name] = map[string]map[string]float64{}
		}
		if !slices.Contains(res.rounds, key) {
			res.rounds = append(res.rounds, key)
		}
		res.runs[name][key] = vals
	}
	return res, sc.Err()
}

// figures returns name's figures of unit, one per run that has it.
func (r *results) figures(name, unit string) []float64 {
	var xs []float64
	for _, k := range r.rounds {
		if v, ok := r.runs[name][k][unit]; ok {
			xs = append(xs, v)
		}
	}
	return xs
}

// ratios returns name's figure of unit over ref's, in each run that has
// both.
func (r *results) ratios(name, ref, unit string) []float64 {
	var xs []float64
	for _, k := range r.rounds {
		a, okA := r.runs[name][k][unit]
		b, okB := r.runs[ref][k][unit]
		if okA && okB && b != 0 {
			xs = append(xs, a/b)
		}
	}
	return xs
}

// reference returns the name of ref for the benchmark name, or "" if it
// has none.
func reference(name, ref string) string {
	key, value, ok := strings.Cut(ref, "=")
	if !ok || strings.Contains(key, "/") {
		return ref
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok && k == key {
			parts[i] = key + "=" + value
			return strings.Join(parts, "/")
		}
	}
	return ""
}

// spec is what a table shows.
type spec struct {
	metrics []string // units whose medians are shown
	ratios  []string // units whose ratios to each reference are shown
	refs    []string // the references
	pivot   string   // a key whose values become columns, or ""
}

// row is one row of the table: its label, and the benchmark of each
// value of the pivot key ("" without a pivot).
type row struct {
	label   string
	members map[string]string
}

// column is one column of the table.
type column struct {
	head     string
	cell     func(row) string
	isFigure bool // a median, not a ratio: a row with none of them is left out
}

// table writes the Markdown table.
func (r *results) table(w io.Writer, s spec) error {
	if len(r.names) == 0 {
		return errors.New("no benchmark results found")
	}
	rows, values := r.rows(s.pivot)
	var cols []column
	for _, u := range s.metrics {
		for _, v := range values {
			cols = append(cols, column{join(v, u), func(rw row) string {
				if xs := r.figures(rw.members[v], u); len(xs) > 0 {
					return number(median(xs))
				}
				return ""
			}, true})
		}
	}
	for _, ref := range s.refs {
		for _, u := range s.ratios {
			for _, v := range values {
				if s.pivot != "" && ref == s.pivot+"="+v {
					continue // the reference itself
				}
				head := "÷ " + ref
				if s.pivot != "" {
					head = v + " ÷ " + strings.TrimPrefix(ref, s.pivot+"=")
				}
				if len(s.ratios) > 1 || !slices.Equal(s.metrics, s.ratios) {
					// Say which figure the ratio is of.
					if s.pivot != "" {
						head = u + ": " + head
					} else {
						head = u + " " + head
					}
				}
				cols = append(cols, column{head, func(rw row) string {
					name := rw.members[v]
					other := reference(name, ref)
					if other == name {
						return "1.00" // itself
					}
					if xs := r.ratios(name, other, u); len(xs) > 0 {
						return fmt.Sprintf("%.2f (%.2f–%.2f)", median(xs), slices.Min(xs), slices.Max(xs))
					}
					return ""
				}, false})
			}
		}
	}

	rounds := 0
	for _, name := range r.names {
		rounds = max(rounds, len(r.runs[name]))
	}
	plural := "s"
	if rounds == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "Medians over %d round%s. A ratio is taken within each round; the table gives its median (lowest–highest).\n\n", rounds, plural)
	head, align := []string{"benchmark"}, []string{"---"}
	for _, c := range cols {
		head = append(head, c.head)
		align = append(align, "---:")
	}
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(w, "| "+strings.Join(align, " | ")+" |")
	for _, rw := range rows {
		cells, shown := []string{rw.label}, false
		for _, c := range cols {
			cell := c.cell(rw)
			shown = shown || (c.isFigure && cell != "")
			cells = append(cells, cell)
		}
		if shown {
			fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
		}
	}
	return nil
}

// rows groups the benchmarks into rows: one for each name without a
// pivot; with one, one for each name without the pivot key, and the
// key's values, in the order they first appear.
func (r *results) rows(pivot string) ([]row, []string) {
	if pivot == "" {
		rows := make([]row, len(r.names))
		for i, name := range r.names {
			rows[i] = row{name, map[string]string{"": name}}
		}
		return rows, []string{""}
	}
	var rows []row
	var values []string
	at := map[string]int{}
	for _, name := range r.names {
		parts := strings.Split(name, "/")
		value, rest := "", parts[:0:0]
		for _, p := range parts {
			if k, v, ok := strings.Cut(p, "="); ok && k == pivot {
				value = v
			} else {
				rest = append(rest, p)
			}
		}
		label := strings.Join(rest, "/")
		if !slices.Contains(values, value) {
			values = append(values, value)
		}
		i, ok := at[label]
		if !ok {
			i = len(rows)
			at[label] = i
			rows = append(rows, row{label, map[string]string{}})
		}
		rows[i].members[value] = name
	}
	return rows, values
}

// join is a column's head: the pivot's value, if any, and the unit.
func join(value, unit string) string {
	if value == "" {
		return unit
	}
	return value + " " + unit
}

// median returns the median of xs, which must not be empty.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// number formats a figure with as many digits as a table needs: whole
// numbers with thousands separators from 100 up, one decimal from 10, two
// below.
func number(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		if neg {
			s = "-" + s
		}
		return s
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
