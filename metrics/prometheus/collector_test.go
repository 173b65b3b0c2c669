package prometheus_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/metrics"
	"github.com/procrastinate-go/procrastinate/metrics/prometheus"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	procrastinate.Main()
	goleak.VerifyTestMain(m)
}

var (
	square = task.Define("prometheus_test.square", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	})
	fails = task.Define("prometheus_test.fails", func(ctx context.Context, n int) (int, error) {
		return 0, errors.New("no")
	})
)

// TestCollectorMatchesMetrics runs calls on a real dispatcher and checks
// that the collector, through a client_golang registry, gives the same
// metric families as package metrics writes, as client_golang's own
// parser reads them: the two stay in step, and the text that package
// metrics writes is valid.
func TestCollectorMatchesMetrics(t *testing.T) {
	d, err := dispatcher.Start(strategy.Throttled(1))
	require.NoError(t, err)
	for i := range 3 {
		_, err := square.Schedule(d, i).Value()
		require.NoError(t, err)
	}
	_, err = fails.Schedule(d, 0).Value()
	require.Error(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx))

	reg := prom.NewPedanticRegistry()
	require.NoError(t, reg.Register(prometheus.New(d)))
	gathered, err := reg.Gather()
	require.NoError(t, err)

	var b strings.Builder
	require.NoError(t, metrics.Write(&b, d.Stats()))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(strings.NewReader(b.String()))
	require.NoError(t, err, "client_golang's parser on what metrics.Write wrote:\n%s", b.String())

	names := make([]string, 0, len(parsed))
	for n := range parsed {
		names = append(names, n)
	}
	slices.Sort(names)
	var fromText []*dto.MetricFamily
	for _, n := range names {
		fromText = append(fromText, parsed[n])
	}
	require.Equal(t, encode(t, gathered), encode(t, fromText), "the collector's families; want those of metrics.Write")
	require.Contains(t, encode(t, gathered), `procrastinate_tasks_completed_total{outcome="succeeded",task="prometheus_test.square"} 3`)
}

// encode writes families in the text format, in a canonical order.
func encode(t *testing.T, families []*dto.MetricFamily) string {
	t.Helper()
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		for _, m := range f.Metric { // client_golang sorts labels by name; metrics.Write puts task first
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
		}
		slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return strings.Compare(a.String(), b.String()) })
		require.NoError(t, enc.Encode(f))
	}
	return b.String()
}
