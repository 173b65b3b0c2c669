package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/metrics"
	"github.com/procrastinate-go/procrastinate/strategy"
)

// Write the exposition of a dispatcher that ran two calls.
func ExampleWrite() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		panic(err)
	}
	square.Schedule(d, 2)
	square.Schedule(d, 3)
	_ = d.Shutdown(context.Background())

	var b strings.Builder
	if err := metrics.Write(&b, d.Stats()); err != nil {
		panic(err)
	}
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "procrastinate_tasks_completed_total") && strings.Contains(line, "succeeded") {
			fmt.Print(line)
		}
	}
	// Output:
	// procrastinate_tasks_completed_total{task="metrics_test.square",outcome="succeeded"} 2
}

// Serve /metrics on a mux of your own.
func ExampleHandler() {
	d, err := dispatcher.Start(strategy.Throttled(1))
	if err != nil {
		panic(err)
	}
	defer d.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(d))
	// http.ListenAndServe(":9100", mux) in a program; here, one request.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output:
	// 200 text/plain; version=0.0.4; charset=utf-8
}
