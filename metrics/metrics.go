// Package metrics writes a dispatcher's [dispatcher.Stats] in the
// Prometheus text exposition format, with no dependency beyond the
// standard library, and serves it over HTTP for a mux of your own.
//
// It is the one package of the module that links net/http: a program that
// does not import it does not carry it, and neither do its children, which
// are fresh starts of the same binary. For github.com/prometheus/client_golang
// use the collector in the nested module
// github.com/procrastinate-go/procrastinate/metrics/prometheus instead.
//
// # Metrics
//
// Every name begins with procrastinate_. Durations are in seconds. Task
// names are registered with task.Define, so the task label has a bounded
// number of values; no label carries a pid.
//
//	tasks_scheduled_total{task}          counter   calls taken in
//	tasks_completed_total{task,outcome}  counter   calls that ended, by dispatcher.Outcome
//	tasks_retries_total{task}            counter   retries after a child died
//	tasks_queued{task}                   gauge     calls waiting for a child
//	tasks_running{task}                  gauge     calls handed to a child, not answered yet
//	task_cpu_seconds_total{task,mode}    counter   CPU time the calls cost their children; mode user or system
//	task_queue_wait_seconds{task}        histogram from Schedule to the start
//	task_run_seconds{task}               histogram from the start to the end
//	children                             gauge     child processes alive
//	children_started_total               counter
//	children_exited_total{reason}        counter   by dispatcher.ExitReason
//	spawn_failures_total                 counter   children that could not be started
//	server_restarts_total                counter   server-mode workers restarted
//	stderr_dropped_bytes_total           counter   children's stderr dropped
//	events_dropped_total                 counter   events that did not fit a subscriber
package metrics

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/procrastinate-go/procrastinate/dispatcher"
)

// ContentType is the media type of what Write writes: the Prometheus text
// format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Write writes s to w in the Prometheus text exposition format, the
// tasks in the order of their names. It returns the first error of w.
func Write(w io.Writer, s dispatcher.Stats) error {
	b := bufio.NewWriter(w)
	x := &writer{b: b}
	names := make([]string, 0, len(s.Tasks))
	for name := range s.Tasks {
		names = append(names, name)
	}
	slices.Sort(names)

	x.family("tasks_scheduled_total", "counter", "Calls taken in: scheduled, or started as server-mode workers.")
	for _, n := range names {
		x.sample("tasks_scheduled_total", []string{"task", n}, float64(s.Tasks[n].Scheduled))
	}
	x.family("tasks_completed_total", "counter", "Calls that ended, by outcome.")
	for _, n := range names {
		for o, c := range s.Tasks[n].Completed {
			x.sample("tasks_completed_total", []string{"task", n, "outcome", dispatcher.Outcome(o).String()}, float64(c))
		}
	}
	x.family("tasks_retries_total", "counter", "Retries of calls whose child died.")
	for _, n := range names {
		x.sample("tasks_retries_total", []string{"task", n}, float64(s.Tasks[n].Retries))
	}
	x.family("tasks_queued", "gauge", "Calls waiting for a child, retries waiting out their delay among them.")
	for _, n := range names {
		x.sample("tasks_queued", []string{"task", n}, float64(s.Tasks[n].Queued))
	}
	x.family("tasks_running", "gauge", "Calls handed to a child and not answered yet.")
	for _, n := range names {
		x.sample("tasks_running", []string{"task", n}, float64(s.Tasks[n].Running))
	}
	x.family("task_cpu_seconds_total", "counter", "CPU time that calls cost their children, by mode (user, system).")
	for _, n := range names {
		x.sample("task_cpu_seconds_total", []string{"task", n, "mode", "user"}, s.Tasks[n].UserCPU.Seconds())
		x.sample("task_cpu_seconds_total", []string{"task", n, "mode", "system"}, s.Tasks[n].SystemCPU.Seconds())
	}
	x.family("task_queue_wait_seconds", "histogram", "How long calls waited from Schedule to their start.")
	for _, n := range names {
		x.histogram("task_queue_wait_seconds", n, s.Tasks[n].QueueWait)
	}
	x.family("task_run_seconds", "histogram", "How long calls ran, from their start to their end.")
	for _, n := range names {
		x.histogram("task_run_seconds", n, s.Tasks[n].RunTime)
	}

	x.family("children", "gauge", "Child processes alive.")
	x.sample("children", nil, float64(s.Children))
	x.family("children_started_total", "counter", "Child processes started.")
	x.sample("children_started_total", nil, float64(s.ChildrenStarted))
	x.family("children_exited_total", "counter", "Child processes that ended, by reason.")
	for r, c := range s.ChildrenExited {
		x.sample("children_exited_total", []string{"reason", dispatcher.ExitReason(r).String()}, float64(c))
	}
	x.family("spawn_failures_total", "counter", "Child processes that could not be started.")
	x.sample("spawn_failures_total", nil, float64(s.SpawnFailures))
	x.family("server_restarts_total", "counter", "Server-mode workers started again after one ended.")
	x.sample("server_restarts_total", nil, float64(s.ServerRestarts))
	x.family("stderr_dropped_bytes_total", "counter", "Bytes of the children's stderr dropped because the writer did not take them in time.")
	x.sample("stderr_dropped_bytes_total", nil, float64(s.StderrDropped))
	x.family("events_dropped_total", "counter", "Events that did not fit a subscriber's channel.")
	x.sample("events_dropped_total", nil, float64(s.EventsDropped))
	return b.Flush()
}

// Handler returns an http.Handler that serves d's Stats, as Write writes
// them, at every request: mount it on a mux of your own, at /metrics say.
// It reads the counters without waiting on d, and works after d has ended.
func Handler(d *dispatcher.Dispatcher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		_ = Write(w, d.Stats()) // a write error is the client's going away
	})
}

// writer appends the exposition's lines; bufio.Writer keeps the first
// error, which Flush returns.
type writer struct{ b *bufio.Writer }

const prefix = "procrastinate_"

func (x *writer) family(name, typ, help string) {
	x.b.WriteString("# HELP " + prefix + name + " " + help + "\n")
	x.b.WriteString("# TYPE " + prefix + name + " " + typ + "\n")
}

// sample writes one line; labels are name, value pairs.
func (x *writer) sample(name string, labels []string, v float64) {
	x.b.WriteString(prefix + name)
	if len(labels) > 0 {
		x.b.WriteByte('{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				x.b.WriteByte(',')
			}
			x.b.WriteString(labels[i] + `="` + escape(labels[i+1]) + `"`)
		}
		x.b.WriteByte('}')
	}
	x.b.WriteByte(' ')
	x.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	x.b.WriteByte('\n')
}

func (x *writer) histogram(name, task string, h dispatcher.Histogram) {
	for i, le := range h.Bounds {
		x.sample(name+"_bucket", []string{"task", task, "le", strconv.FormatFloat(le.Seconds(), 'g', -1, 64)}, float64(h.Counts[i]))
	}
	x.sample(name+"_bucket", []string{"task", task, "le", "+Inf"}, float64(h.Count))
	x.sample(name+"_sum", []string{"task", task}, h.Sum.Seconds())
	x.sample(name+"_count", []string{"task", task}, float64(h.Count))
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// escape escapes a label value as the text format requires.
func escape(s string) string { return escaper.Replace(s) }
