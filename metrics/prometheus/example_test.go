package prometheus_test

import (
	"context"
	"fmt"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/metrics/prometheus"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// Register a dispatcher's collector; serve the registry with promhttp.
func ExampleNew() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		panic(err)
	}
	defer d.Shutdown(context.Background())

	reg := prom.NewRegistry()
	reg.MustRegister(prometheus.New(d))
	// http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	_, _ = square.Schedule(d, 4).Value()
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() == "procrastinate_tasks_scheduled_total" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetCounter().GetValue())
		}
	}
	// Output:
	// procrastinate_tasks_scheduled_total 1
}
