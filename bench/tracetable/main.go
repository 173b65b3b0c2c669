// Command tracetable reads the marks that a build with the
// procrastinate_trace tag wrote (see internal/tracepoint, and the trace
// suite of bench/run.sh) and prints where a task's time goes between
// Schedule and Value: for each point, the median time since Scheduled, and
// the median and 90th percentile of the step from the point before it.
// A second table splits the two pipe crossings by where their ends ran:
// on one CPU, or on the two (a wake-up on the other CPU, which on a
// virtual machine costs an IPI and a halted CPU's wake-up).
//
//	go run ./bench/tracetable DIR
package main

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procrastinate-go/procrastinate/internal/tracepoint"
)

type mark struct {
	ns  int64
	p   tracepoint.Point
	cpu int
}

// stamp is when, and on which CPU, a trip passed a point.
type stamp struct {
	ns  int64
	cpu int
}

// trip is one task's marks: each point when it was first passed.
type trip map[tracepoint.Point]stamp

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tracetable DIR (the $PROCRASTINATE_TRACE of a traced run)")
		os.Exit(2)
	}
	marks, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracetable:", err)
		os.Exit(1)
	}
	trips := split(marks)
	if len(trips) == 0 {
		fmt.Fprintln(os.Stderr, "tracetable: no trip from Scheduled to ValueReturned in", os.Args[1])
		os.Exit(1)
	}
	report(trips)
}

// read returns the marks of every process, in time order.
func read(dir string) ([]mark, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil {
		return nil, err
	}
	var marks []mark
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			ns, err := strconv.ParseInt(fields[0], 10, 64)
			p, ok := tracepoint.Parse(fields[1])
			cpu := -1 // unknown
			if len(fields) > 2 && err == nil {
				cpu, err = strconv.Atoi(fields[2])
			}
			if err != nil || !ok {
				f.Close()
				return nil, fmt.Errorf("%s: not a mark: %q", name, sc.Text())
			}
			marks = append(marks, mark{ns, p, cpu})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(marks, func(a, b mark) int { return cmp.Compare(a.ns, b.ns) })
	return marks, nil
}

// split cuts the marks into trips, one per task: from a Scheduled to the
// ValueReturned after it. In a trip, each point is when it was first
// passed.
func split(marks []mark) []trip {
	var trips []trip
	var cur trip
	for _, m := range marks {
		switch {
		case m.p == tracepoint.Scheduled:
			cur = trip{m.p: {m.ns, m.cpu}}
		case cur == nil:
		default:
			if _, seen := cur[m.p]; !seen {
				cur[m.p] = stamp{m.ns, m.cpu}
			}
			if m.p == tracepoint.ValueReturned {
				trips = append(trips, cur)
				cur = nil
			}
		}
	}
	return trips
}

// report prints the tables.
func report(trips []trip) {
	fmt.Printf("%d tasks; µs\n%-18s %10s %10s %10s\n", len(trips), "point", "since", "step p50", "step p90")
	prev := tracepoint.Scheduled
	for _, p := range tracepoint.Points() {
		var since, step []time.Duration
		for _, t := range trips {
			at, ok := t[p]
			if !ok {
				continue
			}
			since = append(since, time.Duration(at.ns-t[tracepoint.Scheduled].ns))
			if before, ok := t[prev]; ok && p != tracepoint.Scheduled {
				step = append(step, time.Duration(at.ns-before.ns))
			}
		}
		if len(since) == 0 {
			continue
		}
		if p == tracepoint.Scheduled {
			fmt.Printf("%-18s %10.1f %10s %10s\n", p, 0.0, "-", "-")
		} else {
			fmt.Printf("%-18s %10.1f %10.1f %10.1f\n", p, micro(since, 50), micro(step, 50), micro(step, 90))
		}
		prev = p
	}
	fmt.Printf("\nthe crossings by CPU  %22s %22s\n", "same CPU: n, p50", "other CPU: n, p50")
	for _, c := range []struct {
		name     string
		from, to tracepoint.Point
	}{
		{"invocation", tracepoint.InvocationWrite, tracepoint.ChildRead},
		{"answer", tracepoint.AnswerWrite, tracepoint.AnswerRead},
	} {
		same, other := byCPU(trips, c.from, c.to)
		fmt.Printf("%-21s %12d %9.1f %12d %9.1f\n", c.name, len(same), micro(same, 50), len(other), micro(other, 50))
	}
}

// byCPU returns the steps from one point to another in the trips that
// passed both, split by whether the two marks were made on one CPU or on
// two. Marks with no CPU are left out.
func byCPU(trips []trip, from, to tracepoint.Point) (same, other []time.Duration) {
	for _, t := range trips {
		a, okA := t[from]
		b, okB := t[to]
		if !okA || !okB || a.cpu < 0 || b.cpu < 0 {
			continue
		}
		d := time.Duration(b.ns - a.ns)
		if a.cpu == b.cpu {
			same = append(same, d)
		} else {
			other = append(other, d)
		}
	}
	return same, other
}

// micro returns the q-th percentile of ds in microseconds.
func micro(ds []time.Duration, q int) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[(len(ds)-1)*q/100]) / float64(time.Microsecond)
}
