#!/usr/bin/env bash
# bench/throughput.sh: issue 6's benchmarks through the public API
# (dispatcher/throughput_bench_test.go and bench_test.go) beside their
# peers: Python's ProcessPoolExecutor (peers.py ppe_submit) for reused
# workers, the bare re-exec loop (BenchmarkBareReexec2) and Python's
# proc_fork for a fresh process per task, and under the latencies their
# floors: bench/gopingpong (a bare pipe round trip between Go processes, to
# a fresh child and to a reused one) and bench/pingpong.c (the same in C,
# if a C compiler is there; also with the two processes held on two CPUs).
# Interleaved rounds on one machine, and one table of medians with the
# ratios taken within each round.
#
#   bash bench/throughput.sh            # 5 rounds, about 3 minutes
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
go build -o "$tmp/gopingpong" ./bench/gopingpong

run() { # name, bench regexp, benchtime; appends "name unit value round"
	"$tmp/d.test" -test.run '^$' -test.bench "$2" -test.benchtime "$3" 2>/dev/null |
		awk -v name="$1" -v r="$r" '/^Benchmark/ { for (i = 3; i < NF; i += 2) print name, $(i+1), $i, r }' >>"$tmp/all"
}
# percentiles name round: reads a floor program's "p50_us=.. p90_us=.."
# line and appends its two figures.
percentiles() {
	sed -n "s/.*p50_us=\([0-9.]*\) p90_us=\([0-9.]*\).*/$1 p50-µs \1 $2\n$1 p90-µs \2 $2/p" >>"$tmp/all"
}
for r in $(seq "$rounds"); do
	echo "round $r of $rounds ..." >&2
	run fresh '^BenchmarkNoopThrottled2$' 400x
	run bare '^BenchmarkBareReexec2$' 400x
	python3 "$peers/peers.py" proc_fork 1000 | sed -n "s/.*tasks_per_s=\([0-9]*\).*/python-proc_fork tasks\/s \1 $r/p" >>"$tmp/all"
	run pipelined '^BenchmarkReusedPipelined$' "${n}x"
	run one-in-flight '^BenchmarkReusedOneInFlight$' "$((n / 5))x"
	python3 "$peers/peers.py" ppe_submit "$((n / 5))" | sed -n "s/.*tasks_per_s=\([0-9]*\).*/python-ppe_submit tasks\/s \1 $r/p" >>"$tmp/all"
	run latency-fresh '^BenchmarkLatencyFresh$' 100x
	run latency-spare '^BenchmarkLatencySpare$/^idle=1ms$' 100x
	run latency-spare-20ms '^BenchmarkLatencySpare$/^idle=20ms$' 100x
	run latency-reused '^BenchmarkLatencyReused$/^idle=1ms$' 200x
	run latency-reused-20ms '^BenchmarkLatencyReused$/^idle=20ms$' 100x
	for mode in fresh reused; do
		"$tmp/gopingpong" -mode "$mode" -trips 100 -idle 1ms | percentiles "gopingpong-$mode" "$r"
	done
	run answer-64MiB '^BenchmarkAnswer64MiB$' 10x
	run memory '^BenchmarkParentMemoryPerChild$' 1x
done
if command -v cc >/dev/null; then
	cc -O2 -o "$tmp/pingpong" bench/pingpong.c
	for idle in 1000 20000; do
		"$tmp/pingpong" 300 "$idle" | percentiles "pingpong-$idle" 0
	done
	# The same, the parent held on one CPU and the child on another: what
	# a wake-up on the other CPU costs here. The first two CPUs this
	# process may use; none of it when there are not two, or it fails.
	read -r -a cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0))[:2])') || cpus=()
	if [[ ${#cpus[@]} -eq 2 ]] && out=$("$tmp/pingpong" 300 1000 "${cpus[0]}" "${cpus[1]}"); then
		percentiles "pingpong-across" 0 <<<"$out"
	fi
fi
echo "an idle dispatcher, 10 s against 10 s without one ..." >&2
PROCRASTINATE_IDLE_BENCH=1 run idle '^BenchmarkIdleCPU$' 1x

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
get() { awk -v name="$1" -v unit="$2" '$1 == name && $2 == unit { print $3 }' "$tmp/all" | median; }
# ratio a b unit: the median over rounds of a's figure over b's in the same round.
ratio() {
	awk -v a="$1" -v b="$2" -v unit="$3" '$2 == unit && $1 == a { x[$4] = $3 } $2 == unit && $1 == b { y[$4] = $3 }
		END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$tmp/all" | median
}

pipe=$(get pipelined tasks/s)
one=$(get one-in-flight tasks/s)
ppe=$(get python-ppe_submit tasks/s)
printf '\n%-52s %14s\n' "what (medians of $rounds rounds)" "figure"
printf '%-52s %14.0f\n' "fresh process per task, Throttled(2): tasks/s" "$(get fresh tasks/s)"
printf '%-52s %14.0f\n' "bare re-exec loop, 2 at a time: tasks/s" "$(get bare tasks/s)"
printf '%-52s %14.0f\n' "Python proc_fork, 2 at a time: tasks/s" "$(get python-proc_fork tasks/s)"
printf '%-52s %14.2f\n' "fresh / bare loop, within a round (target >= 0.9)" "$(ratio fresh bare tasks/s)"
printf '%-52s %14.2f\n' "fresh / Python proc_fork, within a round" "$(ratio fresh python-proc_fork tasks/s)"
printf '%-52s %14.0f\n' "reused, Pipeline(64), 2 children: tasks/s" "$pipe"
printf '%-52s %14.0f\n' "reused, one in flight, 2 children: tasks/s" "$one"
printf '%-52s %14.0f\n' "Python ProcessPoolExecutor(2).submit: tasks/s" "$ppe"
printf '%-52s %14.1f\n' "pipelined / Python, within a round (target >= 9)" "$(ratio pipelined python-ppe_submit tasks/s)"
printf '%-52s %14.0f\n' "latency, fresh process, no spare: p50 µs" "$(get latency-fresh p50-µs)"
printf '%-52s %14s\n' "latency, warm spare, 1 ms idle: p50 / p90 µs" "$(get latency-spare p50-µs) / $(get latency-spare p90-µs)"
printf '%-52s %14s\n' "latency, warm spare, 20 ms idle: p50 / p90 µs" "$(get latency-spare-20ms p50-µs) / $(get latency-spare-20ms p90-µs)"
printf '%-52s %14s\n' "latency, reused idle child, 1 ms idle: p50 / p90 µs" "$(get latency-reused p50-µs) / $(get latency-reused p90-µs)"
printf '%-52s %14s\n' "latency, reused idle child, 20 ms idle: p50 / p90" "$(get latency-reused-20ms p50-µs) / $(get latency-reused-20ms p90-µs)"
printf '%-52s %14s\n' "Go pipe round trip, fresh child (gopingpong), 1 ms idle" "$(get gopingpong-fresh p50-µs) / $(get gopingpong-fresh p90-µs)"
printf '%-52s %14s\n' "Go pipe round trip, reused child, 1 ms idle" "$(get gopingpong-reused p50-µs) / $(get gopingpong-reused p90-µs)"
printf '%-52s %14s\n' "C pipe round trip (pingpong.c), 1 ms idle: p50 / p90" "$(get pingpong-1000 p50-µs) / $(get pingpong-1000 p90-µs)"
printf '%-52s %14s\n' "the same, 20 ms idle: p50 / p90" "$(get pingpong-20000 p50-µs) / $(get pingpong-20000 p90-µs)"
if grep -q '^pingpong-across ' "$tmp/all"; then
	printf '%-52s %14s\n' "the same, 1 ms idle, on two CPUs: p50 / p90" "$(get pingpong-across p50-µs) / $(get pingpong-across p90-µs)"
fi
printf '%-52s %14.0f\n' "64 MiB []byte answer through Value: MB/s" "$(get answer-64MiB MB/s)"
printf '%-52s %14.0f\n' "parent heap per idle child: bytes" "$(get memory heap-B/child)"
printf '%-52s %14s\n' "idle dispatcher: CPU µs and wakeups in 10 s" "$(get idle cpu-µs/10s) / $(get idle wakeups/10s)"
printf '%-52s %14s\n' "the same process without one" "$(get idle base-cpu-µs/10s) / $(get idle base-wakeups/10s)"
