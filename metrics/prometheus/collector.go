// Package prometheus is a collector of a dispatcher's Stats for
// github.com/prometheus/client_golang. It is a module of its own, so that
// client_golang, which brings net/http and much more, is linked only into
// programs that use it: every child re-executes the whole binary, and a
// larger one starts slower.
//
// The metrics are those that package
// github.com/procrastinate-go/procrastinate/metrics writes, with the same
// names, labels and help; see there for the list.
package prometheus

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/procrastinate-go/procrastinate/dispatcher"
)

// Collector collects a dispatcher's Stats at every scrape. It reads the
// counters without waiting on the dispatcher. Get one from New.
type Collector struct {
	d *dispatcher.Dispatcher
}

// New returns a collector of d's Stats; register it with a
// prometheus.Registerer.
func New(d *dispatcher.Dispatcher) *Collector { return &Collector{d: d} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("procrastinate_"+name, help, labels, nil)
}

var (
	scheduled = desc("tasks_scheduled_total", "Calls taken in: scheduled, or started as server-mode workers.", "task")
	completed = desc("tasks_completed_total", "Calls that ended, by outcome.", "task", "outcome")
	retries   = desc("tasks_retries_total", "Retries of calls whose child died.", "task")
	queued    = desc("tasks_queued", "Calls waiting for a child, retries waiting out their delay among them.", "task")
	running   = desc("tasks_running", "Calls handed to a child and not answered yet.", "task")
	cpu       = desc("task_cpu_seconds_total", "CPU time that calls cost their children, by mode (user, system).", "task", "mode")
	queueWait = desc("task_queue_wait_seconds", "How long calls waited from Schedule to their start.", "task")
	runTime   = desc("task_run_seconds", "How long calls ran, from their start to their end.", "task")
	children  = desc("children", "Child processes alive.")
	started   = desc("children_started_total", "Child processes started.")
	exited    = desc("children_exited_total", "Child processes that ended, by reason.", "reason")
	spawnFail = desc("spawn_failures_total", "Child processes that could not be started.")
	restarts  = desc("server_restarts_total", "Server-mode workers started again after one ended.")
	stderr    = desc("stderr_dropped_bytes_total", "Bytes of the children's stderr dropped because the writer did not take them in time.")
	events    = desc("events_dropped_total", "Events that did not fit a subscriber's channel.")

	all = []*prometheus.Desc{scheduled, completed, retries, queued, running, cpu, queueWait, runTime, children, started, exited, spawnFail, restarts, stderr, events}
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	histogram := func(d *prometheus.Desc, h dispatcher.Histogram, task string) {
		buckets := make(map[float64]uint64, len(h.Bounds))
		for i, b := range h.Bounds {
			buckets[b.Seconds()] = uint64(h.Counts[i])
		}
		ch <- prometheus.MustNewConstHistogram(d, uint64(h.Count), h.Sum.Seconds(), buckets, task)
	}
	for name, t := range s.Tasks {
		counter(scheduled, t.Scheduled, name)
		for o, n := range t.Completed {
			counter(completed, n, name, dispatcher.Outcome(o).String())
		}
		counter(retries, t.Retries, name)
		gauge(queued, t.Queued, name)
		gauge(running, t.Running, name)
		ch <- prometheus.MustNewConstMetric(cpu, prometheus.CounterValue, t.UserCPU.Seconds(), name, "user")
		ch <- prometheus.MustNewConstMetric(cpu, prometheus.CounterValue, t.SystemCPU.Seconds(), name, "system")
		histogram(queueWait, t.QueueWait, name)
		histogram(runTime, t.RunTime, name)
	}
	gauge(children, s.Children)
	counter(started, s.ChildrenStarted)
	for r, n := range s.ChildrenExited {
		counter(exited, n, dispatcher.ExitReason(r).String())
	}
	counter(spawnFail, s.SpawnFailures)
	counter(restarts, s.ServerRestarts)
	counter(stderr, s.StderrDropped)
	counter(events, s.EventsDropped)
}
