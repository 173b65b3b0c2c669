#!/usr/bin/env bash
# bench/api.sh: the public API's benchmarks (dispatcher/bench_test.go)
# beside the bare re-exec loops (dispatcher's and procman's) and Python's
# fresh process per task, in interleaved rounds on one machine, so that
# the ratios hold even when the machine is shared and its speed drifts.
#
#   bash bench/api.sh                 # 6 rounds, Python with 2000 tasks
#   ROUNDS=10 PYN=5000 bash bench/api.sh
#   OUT=/tmp/api.txt bash bench/api.sh
#
# Prints benchstat's summary and a table of tasks/s (medians) with the
# ratios, each taken within a round, to the bare loops and to Python. Needs Go, python3, gcc (for the
# C floor; skipped without it), and the module proxy once for benchstat
# (golang.org/x/perf). PEERS is peers.py (default ../shared/peers/peers.py
# beside the repository).
#
# Not for CI: it takes minutes, and its figures depend on the machine and
# on what else runs there.
set -euo pipefail
if [[ "${CI:-}" == "true" ]]; then
	echo "bench/api.sh: not run in CI (benchmarks need a quiet machine and minutes)" >&2
	exit 0
fi
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-6}
PYN=${PYN:-2000}
OUT=${OUT:-/tmp/api.txt}
PEERS=${PEERS:-$PWD/../shared/peers/peers.py}
unset GORACE # no -race here; nothing to tune

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/dispatcher.test" ./dispatcher/
# The floors: a C loop (the peers' spawn.c) starting a do-nothing static
# binary, and the same loop starting an empty Go program: the Go runtime's
# own start-up, with nothing of a test binary's package initialisation.
have_spawn=0
if command -v gcc >/dev/null && [ -f "$(dirname "$PEERS")/spawn.c" ]; then
	gcc -O2 -o "$tmp/spawn" "$(dirname "$PEERS")/spawn.c"
	gcc -O2 -static -nostdlib -o "$tmp/tiny" "$(dirname "$PEERS")/tiny.c"
	mkdir "$tmp/empty"
	printf 'package main\n\nfunc main() {}\n' >"$tmp/empty/main.go"
	printf 'module empty\n\ngo 1.26\n' >"$tmp/empty/go.mod"
	(cd "$tmp/empty" && go build -o "$tmp/empty-go" .)
	have_spawn=1
fi
# A small program (bench/api.sh writes it into a temporary folder): the
# same no-op tasks under Throttled(2) and the same bare loop, in a binary
# without a test binary's package initialisation: what a small user
# program sees.
have_small=0
mkdir "$tmp/small"
cat >"$tmp/small/main.go" <<'GO'
// A small program that measures no-op tasks through the public API, with
// a fresh process per task, beside a bare re-exec loop of itself: the
// figures a small user program sees, without a test binary's start-up.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate"
	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

var noop = task.Define("small.noop", func(ctx context.Context, n int) (int, error) { return n, nil })

func init() {
	if os.Getenv("SMALL_BARE_CHILD") == "1" {
		syscall.Write(3, []byte("12345678"))
		os.Exit(0)
	}
}

func main() {
	procrastinate.Main()
	n, _ := strconv.Atoi(os.Args[1])
	p := os.Getenv("GOMAXPROCS_LABEL")
	report := func(name string, n int, dt time.Duration, self0, kids0 time.Duration) {
		self, kids := cpu(syscall.RUSAGE_SELF)-self0, cpu(syscall.RUSAGE_CHILDREN)-kids0
		fmt.Printf("Benchmark%s-%s\t%d\t%d ns/op\t%.0f tasks/s\t%.1f parent-cpu-µs/task\t%.1f child-cpu-µs/task\n",
			name, p, n, dt.Nanoseconds()/int64(n), float64(n)/dt.Seconds(),
			float64(self.Microseconds())/float64(n), float64(kids.Microseconds())/float64(n))
	}

	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		panic(err)
	}
	self0, kids0, t0 := cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN), time.Now()
	rs := make([]*result.Result[int], n)
	for i := range rs {
		rs[i] = noop.Schedule(d, i)
	}
	for _, r := range rs {
		if _, err := r.Value(); err != nil {
			panic(err)
		}
	}
	dt := time.Since(t0)
	d.Shutdown(context.Background())
	report("SmallNoopThrottled2", n, dt, self0, kids0)

	exe, _ := os.Executable()
	attr := syscall.ProcAttr{Env: append(os.Environ(), "SMALL_BARE_CHILD=1")}
	var next atomic.Int64
	var wg sync.WaitGroup
	self0, kids0, t0 = cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN), time.Now()
	for range 2 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				var fd [2]int
				syscall.Pipe2(fd[:], syscall.O_CLOEXEC)
				a := attr
				a.Files = []uintptr{0, 1, 2, uintptr(fd[1])}
				pid, err := syscall.ForkExec(exe, []string{exe}, &a)
				syscall.Close(fd[1])
				if err != nil {
					panic(err)
				}
				var b [8]byte
				syscall.Read(fd[0], b[:])
				syscall.Close(fd[0])
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
			}
		})
	}
	wg.Wait()
	report("SmallBareReexec2", n, time.Since(t0), self0, kids0)
}

func cpu(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
GO
printf 'module small\n\ngo 1.26\n\nrequire github.com/procrastinate-go/procrastinate v0.0.0\n\nreplace github.com/procrastinate-go/procrastinate => %s\n' "$PWD" >"$tmp/small/go.mod"
cp go.sum "$tmp/small/go.sum"
if (cd "$tmp/small" && GOFLAGS=-mod=mod go build -o "$tmp/small-bin" .); then
	have_small=1
else
	echo "api.sh: could not build the small program; skipping it" >&2
fi
have_procman=0
if grep -q 'func BenchmarkBareForkExec' procman/bench_test.go 2>/dev/null; then
	go test -c -o "$tmp/procman.test" ./procman/
	have_procman=1
fi

{
	echo "# nproc: $(nproc)"
	echo "# kernel: $(uname -r)"
	echo "# $(go version)"
	echo "# $(python3 --version 2>&1)"
	echo "# rounds: $ROUNDS; python N=$PYN"
} >"$OUT"

for round in $(seq "$ROUNDS"); do
	echo "round $round of $ROUNDS" >&2
	echo "# round $round" >>"$OUT"
	(cd dispatcher && "$tmp/dispatcher.test" -test.run='^$' \
		-test.bench='^(BenchmarkNoopThrottled2|BenchmarkNoopSimple|BenchmarkScheduleToStart|BenchmarkBareReexec2)$' \
		-test.count=1) | grep '^Benchmark' >>"$OUT"
	if [ "$have_procman" = 1 ]; then
		for pattern in '^BenchmarkBareForkExec$/^Answer8$' '^BenchmarkManagerAnswer8$'; do
			(cd procman && "$tmp/procman.test" -test.run='^$' -test.bench="$pattern" \
				-test.count=1) | grep '^Benchmark' >>"$OUT"
		done
	fi
	if [ "$have_spawn" = 1 ]; then
		# spawn-vfork N=2000 P=2 elapsed_s=... tasks_per_s=... us_per_task=...
		for target in tiny empty-go; do
			"$tmp/spawn" vfork "$PYN" 2 "$tmp/$target" | awk -v p="$(nproc)" -v name="$target" '{
				for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				printf "BenchmarkCSpawn/%s-%s\t%s\t%.0f ns/op\t%s tasks/s\n", name, p, v["N"], v["us_per_task"] * 1000, v["tasks_per_s"]
			}' >>"$OUT"
		done
	fi
	if [ "$have_small" = 1 ]; then
		GOMAXPROCS_LABEL="$(nproc)" "$tmp/small-bin" "$PYN" >>"$OUT"
	fi
	if [ -f "$PEERS" ]; then
		# py-proc_fork N=2000 P=2 elapsed_s=... tasks_per_s=... us_per_task=...
		python3 "$PEERS" proc_fork "$PYN" | awk -v p="$(nproc)" '{
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			printf "BenchmarkPythonProcFork-%s\t%s\t%.0f ns/op\t%s tasks/s\n", p, v["N"], v["us_per_task"] * 1000, v["tasks_per_s"]
		}' >>"$OUT"
	fi
done

echo
go run golang.org/x/perf/cmd/benchstat@latest "$OUT"

echo
python3 - "$OUT" <<'PY'
# Per benchmark: the median of tasks/s; the median (and the range) over
# the rounds of its ratio to each reference measured in the same round,
# which cancels the drift of a shared machine's speed; and the median CPU
# per task (parent, children) where it is reported.
import re, statistics, sys
rounds, cur = [], None
for line in open(sys.argv[1]):
    if re.match(r"# round \d+$", line):
        cur = {}
        rounds.append(cur)
        continue
    m = re.match(r'^Benchmark(\S+?)(-\d+)?\s+\d+\s', line)
    if not m or cur is None:
        continue
    unit = lambda u: u.replace("us/op", "µs/task")  # procman's benchmarks say cpu-us/op
    cur[m.group(1)] = {unit(u): float(v) for v, u in re.findall(r'([\d.e+]+) (tasks/s|(?:parent|child)-cpu-(?:µs/task|us/op))', line)}
names = list(dict.fromkeys(k for r in rounds for k in r))
def med(k, u):
    xs = [r[k][u] for r in rounds if k in r and u in r[k]]
    return statistics.median(xs) if xs else None
def ratio(k, ref):
    xs = [r[k]["tasks/s"] / r[ref]["tasks/s"] for r in rounds if k in r and ref in r and "tasks/s" in r[k] and "tasks/s" in r[ref]]
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})" if xs else ""
refs = [r for r in ("BareReexec2", "SmallBareReexec2", "PythonProcFork") if any(r in x for x in rounds)]
rated = sorted((k for k in names if med(k, "tasks/s")), key=lambda k: -med(k, "tasks/s"))
fmt = lambda v: "" if v is None else f"{v:,.0f}"
print(f"{len(rounds)} rounds; ratios are medians over the rounds (range)\n")
print("| benchmark | tasks/s | " + " | ".join("÷ " + r for r in refs) + " | parent CPU µs/task | child CPU µs/task |")
print("| --- | ---: | " + " | ".join("---:" for _ in refs) + " | ---: | ---: |")
for k in rated:
    print(f"| {k} | {fmt(med(k, 'tasks/s'))} | " + " | ".join(ratio(k, r) for r in refs)
          + f" | {fmt(med(k, 'parent-cpu-µs/task'))} | {fmt(med(k, 'child-cpu-µs/task'))} |")
PY
