#!/usr/bin/env bash
# bench/latency-trace.sh: where a task's latency goes, point by point, in
# the parent and the child. It builds the dispatcher's benchmarks with the
# procrastinate_trace tag (internal/tracepoint: a timestamp at each point a
# task passes, in both processes, on the clock they share), runs the
# latency benchmarks of a warm spare and of a reused idle child (1 ms of
# idleness before each task), and prints a table for each
# (bench/tracetable). Each mark costs two system calls (the clock and
# the CPU), a microsecond or two: the traced totals run 20-30 µs above the
# untraced benchmarks', and the steps are what to compare.
#
#   bash bench/latency-trace.sh          # 200 tasks each, under a minute
#   TASKS=500 bash bench/latency-trace.sh
set -euo pipefail
if [[ "${CI:-}" == "true" ]]; then
	echo "bench/latency-trace.sh: not run in CI" >&2
	exit 0
fi
cd "$(dirname "$0")/.."
tasks=${TASKS:-200}
unset GORACE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -tags procrastinate_trace -o "$tmp/d.test" ./dispatcher/
go build -o "$tmp/tracetable" ./bench/tracetable
for bench in Spare Reused; do
	mkdir "$tmp/$bench"
	echo "== Latency$bench/idle=1ms"
	(cd dispatcher && PROCRASTINATE_TRACE="$tmp/$bench" "$tmp/d.test" -test.run '^$' \
		-test.bench "^BenchmarkLatency$bench\$/^idle=1ms\$" -test.benchtime "${tasks}x" | grep '^Benchmark')
	"$tmp/tracetable" "$tmp/$bench"
done
