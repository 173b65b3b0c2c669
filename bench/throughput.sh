#!/usr/bin/env bash
# bench/throughput.sh: issue 6's benchmarks through the public API
# (dispatcher/throughput_bench_test.go) beside Python's ProcessPoolExecutor
# (peers.py ppe_submit), in interleaved rounds on one machine, and one
# table of medians with the ratios measured in the same run.
#
#   bash bench/throughput.sh            # 5 rounds, a few minutes
#   ROUNDS=9 N=200000 bash bench/throughput.sh
#
# Environment: ROUNDS (default 5), N (tasks per throughput run and per
# Python run, default 100000), PEERS (default ../shared/peers beside the
# repository). Not for CI: it takes minutes and its figures depend on the
# machine and what else runs there.
set -euo pipefail
if [[ "${CI:-}" == "true" ]]; then
	echo "bench/throughput.sh: not run in CI" >&2
	exit 0
fi
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
n=${N:-100000}
peers=${PEERS:-$(pwd)/../shared/peers}
unset GORACE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/d.test" ./dispatcher/

run() { # name, bench regexp, benchtime
	"$tmp/d.test" -test.run '^$' -test.bench "$2" -test.benchtime "$3" 2>/dev/null |
		awk -v name="$1" '/^Benchmark/ { for (i = 3; i < NF; i += 2) print name, $(i+1), $i }' >>"$tmp/all"
}
for r in $(seq "$rounds"); do
	echo "round $r of $rounds ..." >&2
	run pipelined '^BenchmarkReusedPipelined$' "${n}x"
	run one-in-flight '^BenchmarkReusedOneInFlight$' "$((n / 5))x"
	python3 "$peers/peers.py" ppe_submit "$((n / 5))" | sed -n 's/.*tasks_per_s=\([0-9]*\).*/python-ppe_submit tasks\/s \1/p' >>"$tmp/all"
	run latency-fresh '^BenchmarkLatencyFresh$' 100x
	run latency-spare '^BenchmarkLatencySpare$' 100x
	run latency-reused '^BenchmarkLatencyReused$' 300x
	run answer-64MiB '^BenchmarkAnswer64MiB$' 10x
	run memory '^BenchmarkParentMemoryPerChild$' 1x
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
get() { awk -v name="$1" -v unit="$2" '$1 == name && $2 == unit { print $3 }' "$tmp/all" | median; }

pipe=$(get pipelined tasks/s)
one=$(get one-in-flight tasks/s)
ppe=$(get python-ppe_submit tasks/s)
printf '\n%-52s %14s\n' "what (medians of $rounds rounds)" "figure"
printf '%-52s %14.0f\n' "reused, Pipeline(64), 2 children: tasks/s" "$pipe"
printf '%-52s %14.0f\n' "reused, one in flight, 2 children: tasks/s" "$one"
printf '%-52s %14.0f\n' "Python ProcessPoolExecutor(2).submit: tasks/s" "$ppe"
printf '%-52s %14.1f\n' "pipelined / Python (target >= 9)" "$(echo "$pipe / $ppe" | bc -l)"
printf '%-52s %14.0f\n' "latency, fresh process, no spare: p50 µs" "$(get latency-fresh p50-µs)"
printf '%-52s %14.0f\n' "latency, fresh process, warm spare: p50 µs" "$(get latency-spare p50-µs)"
printf '%-52s %14.0f\n' "latency, reused idle child: p50 µs" "$(get latency-reused p50-µs)"
printf '%-52s %14.0f\n' "64 MiB []byte answer through Value: MB/s" "$(get answer-64MiB MB/s)"
printf '%-52s %14.0f\n' "parent heap per idle child: bytes" "$(get memory heap-B/child)"
