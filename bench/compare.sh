#!/usr/bin/env bash
# compare.sh: procman's benchmarks beside the bare ForkExec loop and the peers
# of ../shared/peers (C vfork+exec, Python's fresh process per task), all in
# one session on one machine, and one table of the results.
#
#   bash bench/compare.sh                 # 10 rounds, about 2 minutes
#   ROUNDS=20 N=4000 bash bench/compare.sh
#
# Environment: ROUNDS (default 10), N (tasks per peer run, default 2000),
# BENCHTIME (go test -benchtime, default 200x; BENCHTIME_BIG for the 64 MiB
# answers, default 20x), PEERS (the peers folder,
# default ../shared/peers beside the repository), KEEP=1 keeps the raw
# output in the temporary folder and prints its path.
#
# Not for CI: it takes minutes, its figures depend on the machine and on
# what else runs there, and it needs gcc, python3 and the module proxy (for
# benchstat). The machines are shared and noisy, so the rounds are short and
# interleave every benchmark and peer; the table gives medians, and the
# manager's overhead is the median of its ratio to the bare loop in the
# same round. Compare ratios within one run, not absolute figures across
# runs.
set -euo pipefail

if [[ "${CI:-}" == "true" ]]; then
	echo "bench/compare.sh: not run in CI (benchmarks need a quiet machine and minutes)" >&2
	exit 0
fi

rounds=${ROUNDS:-10}
n=${N:-2000}
benchtime=${BENCHTIME:-200x}
benchtime_big=${BENCHTIME_BIG:-20x}
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS:-$root/../shared/peers}
tmp=$(mktemp -d)
if [[ "${KEEP:-}" == 1 ]]; then
	echo "raw output in $tmp" >&2
else
	trap 'rm -rf "$tmp"' EXIT
fi

for f in spawn.c tiny.c peers.py; do
	[[ -f $peers/$f ]] || { echo "compare.sh: $peers/$f is missing (set PEERS)" >&2; exit 1; }
done

echo "building into $tmp ..." >&2
(cd "$root" && GORACE= go test -c -o "$tmp/procman.test" ./procman/)
gcc -O2 -o "$tmp/spawn" "$peers/spawn.c"
gcc -O2 -static -nostdlib -o "$tmp/tiny" "$peers/tiny.c"
mkdir "$tmp/empty"
printf 'package main\n\nfunc main() {}\n' >"$tmp/empty/main.go"
(cd "$tmp/empty" && GOFLAGS=-buildvcs=false go build -o "$tmp/emptygo" main.go)

benches=(
	'^BenchmarkBareForkExec$/^StartReap$'
	'^BenchmarkManagerStartReap$'
	'^BenchmarkBareForkExec$/^Answer8$'
	'^BenchmarkManagerAnswer8$'
	'^BenchmarkBareForkExec$/^Answer64MiB$'
	'^BenchmarkManagerAnswer64MiB$'
)

# Each round runs everything once; every second round goes backwards, so that neither
# side of a pair always runs first.
for ((r = 1; r <= rounds; r++)); do
	echo "round $r of $rounds ..." >&2
	order=("${benches[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#benches[@]} - 1; i >= 0; i--)); do order+=("${benches[i]}"); done
	fi
	for b in "${order[@]}"; do
		bt=$benchtime
		[[ $b == *64MiB* ]] && bt=$benchtime_big
		(cd "$root/procman" && GORACE= "$tmp/procman.test" -test.run='^$' -test.bench="$b" -test.benchtime="$bt") |
			grep '^Benchmark' >>"$tmp/bench.txt"
	done
	(cd "$tmp" && ./spawn vfork "$n" 2 ./tiny) >>"$tmp/peers.txt"
	(cd "$tmp" && ./spawn vfork $((n / 4)) 2 ./emptygo | sed 's/^spawn-vfork/spawn-vfork-go/') >>"$tmp/peers.txt"
	python3 "$peers/peers.py" proc_fork "$((n / 2))" >>"$tmp/peers.txt"
done

# benchstat wants one name with the side as a key: rename
# BenchmarkBareForkExec/X and BenchmarkManagerX to BenchmarkChild/work=X/impl=...
{
	echo "goos: linux"
	echo "pkg: github.com/procrastinate-go/procrastinate/procman"
	sed -E -e 's#^BenchmarkBareForkExec/([A-Za-z0-9]+)#BenchmarkChild/work=\1/impl=bare#' \
		-e 's#^BenchmarkManager([A-Za-z0-9]+)#BenchmarkChild/work=\1/impl=manager#' "$tmp/bench.txt"
} >"$tmp/paired.txt"

echo
echo "## benchstat: the manager against the bare loop"
echo
(cd "$root" && go run golang.org/x/perf/cmd/benchstat@latest -row /work -col '/impl@(bare manager)' "$tmp/paired.txt") ||
	echo "(benchstat unavailable; the table below has the medians)"

echo
echo "## the table (medians of $rounds rounds; 2 children in flight everywhere)"
echo
python3 - "$tmp/bench.txt" "$tmp/peers.txt" <<'EOF'
import re, statistics, sys

bench, peers = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    name = re.sub(r"-\d+$", "", f[0])
    vals = {f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)}
    bench.setdefault(name, []).append(vals)
for line in open(sys.argv[2]):
    m = re.match(r"(\S+) .*tasks_per_s=(\d+)", line)
    if m:
        peers.setdefault(m.group(1), []).append(float(m.group(2)))

def med(name, key):
    xs = [v[key] for v in bench.get(name, []) if key in v]
    return statistics.median(xs) if xs else float("nan")

rows = [
    ("C vfork+exec of a static no-op (`spawn vfork N 2 ./tiny`)", peers.get("spawn-vfork")),
    ("C vfork+exec of an empty Go binary", peers.get("spawn-vfork-go")),
    ("Python: fresh forked Process per task, result on a Pipe (`peers.py proc_fork`)", peers.get("py-proc_fork")),
]
print("| what | tasks/s | µs/task | parent CPU µs/task | child CPU µs/task |")
print("| --- | ---: | ---: | ---: | ---: |")
for what, xs in rows:
    if xs:
        t = statistics.median(xs)
        print(f"| {what} | {t:,.0f} | {1e6 / t:,.0f} | | |")
work = [("StartReap", "child exits at once"), ("Answer8", "one 8-byte answer"), ("Answer64MiB", "one 64 MiB answer")]
for w, what in work:
    for side, name in (("bare ForkExec loop", f"BenchmarkBareForkExec/{w}"), ("procman.Manager", f"BenchmarkManager{w}")):
        ns = med(name, "ns/op")
        extra = f" ({med(name, 'MB/s'):,.0f} MB/s)" if w == "Answer64MiB" else ""
        print(f"| {side}, test binary, {what}{extra} | {1e9 / ns:,.0f} | {ns / 1e3:,.0f} | "
              f"{med(name, 'parent-cpu-us/op'):,.0f} | {med(name, 'child-cpu-us/op'):,.0f} |")
print()
for w, what in work:
    bare, mgr = bench.get(f"BenchmarkBareForkExec/{w}", []), bench.get(f"BenchmarkManager{w}", [])
    # The k-th run of each side ran in the same round, next to each other.
    ratios = [m["ns/op"] / b["ns/op"] for b, m in zip(bare, mgr)]
    if not ratios:
        continue
    pb, pm = med(f"BenchmarkBareForkExec/{w}", "parent-cpu-us/op"), med(f"BenchmarkManager{w}", "parent-cpu-us/op")
    print(f"manager over bare, {what}: time {100 * (statistics.median(ratios) - 1):+.1f}% "
          f"(median of {len(ratios)} same-round ratios; lowest {100 * (min(ratios) - 1):+.1f}%, highest {100 * (max(ratios) - 1):+.1f}%), "
          f"parent CPU {pm - pb:+,.0f} µs per child")
EOF

# ---------------------------------------------------------------------------
# The public API (dispatcher/bench_test.go): no-op tasks through
# Def.Schedule and Result.Value under Throttled(2) and Simple, a bare
# re-exec loop in the same test binary, the same pair in a small program,
# Schedule-to-start latency, and Python's fresh process per task. They run
# from their own script, in rounds of their own, so that this one stays
# about procman:
#
#   bash bench/api.sh             # docs/performance.md has the figures
# ---------------------------------------------------------------------------
