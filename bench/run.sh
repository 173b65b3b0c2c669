#!/usr/bin/env bash
# bench/run.sh: the benchmarks beside what they compare against, in
# interleaved rounds on one machine, and one table for each suite. A ratio
# in a table is taken within each round, so that it holds even when the
# machine is shared and its speed drifts: compare ratios, not absolute
# figures from different runs.
#
#   bash bench/run.sh fresh size        # the suites named
#   bash bench/run.sh all               # every suite, about 10 minutes
#   ROUNDS=9 bash bench/run.sh fresh
#   QUICK=1 bash bench/run.sh all       # few tasks, 2 rounds: checks that it works
#
# The suites:
#   fresh    a fresh process per task: no-op tasks through the public API in
#            a program of its own (bench/apifresh) and in the dispatcher's
#            test binary, beside a minimal Go program that re-executes itself
#            (bench/goreexec), the test binary's own bare re-exec loop, a C
#            vfork+exec loop of a program that only exits (bench/c), and
#            Python's fresh forked process per task (bench/python/pools.py)
#   size     how large a task must be for a process to pay: the same CPU
#            work per task in goroutines, fresh processes and reused
#            children (bench/tasksize)
#   reuse    reused children, 64 tasks in flight each and one, beside
#            Python's ProcessPoolExecutor; a 64 MiB answer; the parent's
#            heap per idle child
#   latency  Schedule to Value of one task on an idle dispatcher (a fresh
#            process, a warm spare, a reused child), beside a bare pipe round
#            trip between Go processes (bench/gopingpong) and between C
#            processes (bench/c/pingpong.c)
#   procman  procman.Manager beside a bare ForkExec loop
#   idle     the CPU and wake-ups of an idle dispatcher (20 s a round)
#   trace    where one task's latency goes, step by step (bench/tracetable)
#   portable procman's two backends side by side: the dispatcher's test
#            binary built as it is and with -tags procrastinate_portable,
#            for a fresh process per task, reused children, a warm spare's
#            latency, a 64 MiB answer and an idle dispatcher (10 s a round)
#   all      all of the above, in this order
#
# Environment: ROUNDS (default 5; 2 with QUICK=1); QUICK=1 for few tasks per
# run; OUT, the folder for the raw output (default /tmp/procrastinate-bench:
# one file per suite, which `cd bench && go tool benchstat FILE` reads too).
#
# Needs Go. The Python rows need python3 and the C rows a C compiler (cc);
# without them those rows are left out, and the script says so. Not for CI:
# it takes minutes, and its figures depend on the machine and on what else
# runs there.
set -euo pipefail
if [[ "${CI:-}" == "true" ]]; then
	echo "bench/run.sh: not run in CI (benchmarks need a quiet machine and minutes)" >&2
	exit 0
fi

suites_all=(fresh size reuse latency procman idle trace portable)
usage() {
	echo "usage: bash bench/run.sh SUITE... (${suites_all[*]}, or all)" >&2
	exit 2
}
[[ $# -gt 0 ]] || usage
suites=()
for s in "$@"; do
	if [[ $s == all ]]; then
		suites+=("${suites_all[@]}")
	elif [[ " ${suites_all[*]} " == *" $s "* ]]; then
		suites+=("$s")
	else
		echo "bench/run.sh: no suite $s" >&2
		usage
	fi
done

root=$(cd "$(dirname "$0")/.." && pwd)
quick=${QUICK:-0}
if [[ $quick == 1 ]]; then rounds=${ROUNDS:-2}; else rounds=${ROUNDS:-5}; fi
out=${OUT:-/tmp/procrastinate-bench}
mkdir -p "$out"
# Each module builds on its own, as a user's would; no -race here.
export GOWORK=off
unset GORACE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# n FULL SMALL: how many, at full size or with QUICK=1.
n() { if [[ $quick == 1 ]]; then echo "$2"; else echo "$1"; fi; }

have_py=1
command -v python3 >/dev/null || have_py=0
have_cc=1
command -v cc >/dev/null || have_cc=0
[[ $have_py == 1 ]] || echo "bench/run.sh: no python3: the Python rows are left out" >&2
[[ $have_cc == 1 ]] || echo "bench/run.sh: no C compiler (cc): the C rows are left out" >&2

# machine: the machine, and its load now, as comment lines.
machine() {
	local cpu
	cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	echo "# machine: $(nproc) CPUs (${cpu:-unknown CPU}), Linux $(uname -r), $(go version | cut -d' ' -f3-)"
	if [[ $have_py == 1 ]]; then echo "# $(python3 --version 2>&1)"; fi
	echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Building, each thing once, into $tmp.
gobin() { # NAME: the program bench/NAME
	[[ -x $tmp/$1 ]] || (cd "$root/bench" && go build -o "$tmp/$1" "./$1")
}
testbin() { # PACKAGE [TAGS]: the package's test binary
	local bin=$tmp/$1${2:+-$2}.test
	[[ -x $bin ]] || (cd "$root" && go test -c ${2:+-tags "$2"} -o "$bin" "./$1/")
}
cbin() { # NAME [FLAGS]: bench/c/NAME.c; fails without a compiler
	[[ $have_cc == 1 ]] || return 1
	[[ -x $tmp/$1 ]] || cc -O2 "${@:2}" -o "$tmp/$1" "$root/bench/c/$1.c"
}

# gobench PACKAGE REGEXP BENCHTIME: one run of the package's benchmarks,
# their result lines appended to $raw.
gobench() {
	(cd "$root/$1" && "$tmp/$1.test" -test.run='^$' -test.bench="$2" -test.benchtime="$3") |
		grep '^Benchmark' >>"$raw"
}

# rounds ITEM...: runs every item (a function) once a round, in reverse
# order every second round, so that no item always runs first.
rounds() {
	local r i item items
	for ((r = 1; r <= rounds; r++)); do
		echo "  round $r of $rounds" >&2
		echo "# round $r" >>"$raw"
		items=("$@")
		if ((r % 2 == 0)); then
			items=()
			for ((i = $# ; i >= 1; i--)); do items+=("${!i}"); done
		fi
		reverse=$((r % 2 == 0))
		for item in "${items[@]}"; do "$item"; done
	done
}

# table ARGS...: benchtable's table of $raw.
table() {
	echo
	grep -E '^# (machine|Python|load)' "$raw" | sed 's/^# //'
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	"$tmp/benchtable" "$@" "$raw"
	echo
}

# fresh: a fresh process per task.
fresh_api() { "$tmp/apifresh" "$(n 1000 30)" >>"$raw"; }
fresh_goreexec() { "$tmp/goreexec" "$(n 1000 30)" >>"$raw"; }
fresh_testbin_api() { gobench dispatcher '^BenchmarkNoopThrottled2$' "$(n 400 20)x"; }
fresh_testbin_bare() { gobench dispatcher '^BenchmarkBareReexec2$' "$(n 400 20)x"; }
fresh_c() { "$tmp/spawnloop" "$(n 2000 50)" "$tmp/nop" >>"$raw"; }
fresh_python() { python3 "$root/bench/python/pools.py" fresh "$(n 500 20)" >>"$raw"; }
suite_fresh() {
	gobin apifresh
	gobin goreexec
	testbin dispatcher
	local items=(fresh_api fresh_goreexec fresh_testbin_api fresh_testbin_bare) refs=(-ref GoReexec -ref BareReexec2)
	if cbin spawnloop && cbin nop -static -nostdlib; then
		items+=(fresh_c)
	else
		echo "bench/run.sh: the C vfork+exec row is left out" >&2
	fi
	if [[ $have_py == 1 ]]; then
		items+=(fresh_python)
		refs+=(-ref PythonFresh)
	fi
	rounds "${items[@]}"
	table -metric tasks/s -metric parent-cpu-µs/task -metric child-cpu-µs/task -ratio tasks/s "${refs[@]}"
	echo "APIFresh ÷ GoReexec: a fresh task through the public API against the minimal Go re-exec loop."
}

# size: how large a task must be for a process to pay.
size_run() {
	local order=()
	[[ $reverse == 1 ]] && order=(-reverse)
	"$tmp/tasksize" -per-ms "$per_ms" -budget "$(n 1s 10ms)" -min 10 -max "$(n 1000 20)" "${order[@]}" >>"$raw"
}
suite_size() {
	gobin tasksize
	per_ms=$("$tmp/tasksize" -calibrate)
	echo "# per-ms: $per_ms rounds of the busy loop" >>"$raw"
	rounds size_run
	table -pivot mode -metric cpu-µs/task -ratio wall-µs/task -ratio cpu-µs/task -ref mode=goroutine
	echo "A ratio to goroutines near 1 means a process costs the task little: within 10% is 1.10 or less."
}

# reuse: reused children.
reuse_pipelined() { gobench dispatcher '^BenchmarkReusedPipelined$' "$(n 100000 2000)x"; }
reuse_one() { gobench dispatcher '^BenchmarkReusedOneInFlight$' "$(n 20000 500)x"; }
reuse_python() { python3 "$root/bench/python/pools.py" pool "$(n 20000 500)" >>"$raw"; }
reuse_big() { gobench dispatcher '^BenchmarkAnswer64MiB$' "$(n 10 2)x"; }
reuse_memory() { gobench dispatcher '^BenchmarkParentMemoryPerChild$' 1x; }
suite_reuse() {
	testbin dispatcher
	local items=(reuse_pipelined reuse_one reuse_big reuse_memory) refs=()
	if [[ $have_py == 1 ]]; then
		items+=(reuse_python)
		refs=(-ref PythonPool)
	fi
	rounds "${items[@]}"
	table -metric tasks/s -metric MB/s -metric heap-B/child -ratio tasks/s "${refs[@]}"
}

# latency: one task at a time on an idle dispatcher.
latency_api() {
	gobench dispatcher '^BenchmarkLatencyFresh$' "$(n 100 10)x"
	gobench dispatcher '^BenchmarkLatencySpare$' "$(n 100 10)x"
	gobench dispatcher '^BenchmarkLatencyReused$' "$(n 100 10)x"
}
latency_go() {
	local mode
	for mode in fresh reused; do
		"$tmp/gopingpong" -mode "$mode" -trips "$(n 100 10)" -idle 1ms >>"$raw"
	done
}
latency_c() {
	"$tmp/pingpong" "$(n 300 20)" 1000 >>"$raw"
	"$tmp/pingpong" "$(n 300 20)" 20000 >>"$raw"
	# The two processes held on two CPUs: what a wake-up on the other
	# CPU costs here.
	if [[ ${#cpus[@]} -ge 2 ]]; then
		"$tmp/pingpong" "$(n 300 20)" 1000 "${cpus[0]}" "${cpus[1]}" >>"$raw"
	fi
}
suite_latency() {
	testbin dispatcher
	gobin gopingpong
	local items=(latency_api latency_go) list part
	if cbin pingpong; then
		items+=(latency_c)
		# The first two CPUs this process may use.
		cpus=()
		IFS=, read -ra list < <(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)
		for part in "${list[@]}"; do
			if [[ $part == *-* ]]; then
				for ((c = ${part%-*}; c <= ${part#*-} && ${#cpus[@]} < 2; c++)); do cpus+=("$c"); done
			elif [[ ${#cpus[@]} -lt 2 ]]; then
				cpus+=("$part")
			fi
		done
	else
		echo "bench/run.sh: the C round trips are left out" >&2
	fi
	rounds "${items[@]}"
	table -metric p50-µs -metric p90-µs -ratio p50-µs \
		-ref GoPipeTrip/child=fresh/idle=1ms -ref GoPipeTrip/child=reused/idle=1ms
}

# procman: the manager beside a bare loop; the names become
# Child/work=W/impl=bare|manager, so that -ref impl=bare pairs them.
procman_run() {
	local b bt
	for b in '^BenchmarkBareForkExec$/^StartReap$' '^BenchmarkManagerStartReap$' \
		'^BenchmarkBareForkExec$/^Answer8$' '^BenchmarkManagerAnswer8$' \
		'^BenchmarkBareForkExec$/^Answer64MiB$' '^BenchmarkManagerAnswer64MiB$'; do
		bt=$(n 200 10)x
		[[ $b == *64MiB* ]] && bt=$(n 20 2)x
		(cd "$root/procman" && "$tmp/procman.test" -test.run='^$' -test.bench="$b" -test.benchtime="$bt") |
			grep '^Benchmark' |
			sed -E -e 's#^BenchmarkBareForkExec/([A-Za-z0-9]+)#BenchmarkChild/work=\1/impl=bare#' \
				-e 's#^BenchmarkManager([A-Za-z0-9]+)#BenchmarkChild/work=\1/impl=manager#' >>"$raw"
	done
}
suite_procman() {
	testbin procman
	rounds procman_run
	table -metric tasks/s -metric parent-cpu-us/op -metric child-cpu-us/op -metric MB/s -ratio tasks/s -ref impl=bare
}

# idle: 10 s with an idle dispatcher and 10 s without (half a second
# each with QUICK=1).
idle_run() {
	if [[ $quick == 1 ]]; then
		gobench dispatcher '^BenchmarkIdleCPU$' 1x
	else
		PROCRASTINATE_IDLE_BENCH=1 gobench dispatcher '^BenchmarkIdleCPU$' 1x
	fi
}
suite_idle() {
	testbin dispatcher
	rounds idle_run
	table -metric cpu-µs/10s -metric base-cpu-µs/10s -metric wakeups/10s -metric base-wakeups/10s
	echo "cpu and wakeups: with an idle dispatcher; base-: the same process without one."
}

# trace: the dispatcher's benchmarks built with the procrastinate_trace
# tag, which marks each point a task passes in both processes. Each mark
# costs a microsecond or two, so the traced totals run above the untraced
# benchmarks': read the steps.
suite_trace() {
	testbin dispatcher procrastinate_trace
	gobin tracetable
	local b
	for b in Spare Reused; do
		mkdir -p "$tmp/trace-$b"
		echo
		echo "Latency$b/idle=1ms, traced:"
		(cd "$root/dispatcher" && PROCRASTINATE_TRACE="$tmp/trace-$b" "$tmp/dispatcher-procrastinate_trace.test" \
			-test.run='^$' -test.bench="^BenchmarkLatency$b\$/^idle=1ms\$" -test.benchtime="$(n 200 20)x") |
			grep '^Benchmark' | tee -a "$raw"
		"$tmp/tracetable" "$tmp/trace-$b"
	done
}

# portable: the same benchmarks on each backend; the names get
# /backend=linux or /backend=portable, so that -ref backend=linux pairs them.
portable_bench() { # BACKEND REGEXP BENCHTIME
	local bin=$tmp/dispatcher.test
	[[ $1 == portable ]] && bin=$tmp/dispatcher-procrastinate_portable.test
	(cd "$root/dispatcher" && "$bin" -test.run='^$' -test.bench="$2" -test.benchtime="$3") |
		grep '^Benchmark' |
		awk -v backend="$1" '{
			name = $1; procs = ""
			if (match(name, /-[0-9]+$/)) { procs = substr(name, RSTART); name = substr(name, 1, RSTART - 1) }
			$1 = name "/backend=" backend procs
			print
		}' >>"$raw"
}
portable_run() { # BACKEND
	portable_bench "$1" '^BenchmarkNoopThrottled2$' "$(n 400 20)x"
	portable_bench "$1" '^BenchmarkReusedPipelined$' "$(n 100000 2000)x"
	portable_bench "$1" '^BenchmarkLatencySpare$/^idle=1ms$' "$(n 100 10)x"
	portable_bench "$1" '^BenchmarkAnswer64MiB$' "$(n 10 2)x"
	portable_bench "$1" '^BenchmarkAnswer64MiBFilled$' "$(n 10 2)x"
	if [[ $quick == 1 ]]; then
		portable_bench "$1" '^BenchmarkIdleCPU$' 1x
	else
		PROCRASTINATE_IDLE_BENCH=1 portable_bench "$1" '^BenchmarkIdleCPU$' 1x
	fi
}
portable_linux() { portable_run linux; }
portable_portable() { portable_run portable; }
suite_portable() {
	testbin dispatcher
	testbin dispatcher procrastinate_portable
	rounds portable_linux portable_portable
	table -pivot backend -metric tasks/s -metric MB/s -metric p50-µs -metric cpu-µs/10s -metric wakeups/10s \
		-ratio tasks/s -ratio MB/s -ratio p50-µs -ref backend=linux
	echo "portable ÷ linux: the portable backend's figure over the Linux backend's in the same round."
	echo "The target: 0.8 or more for tasks/s and MB/s; cpu and wakeups of an idle dispatcher near 0 on both."
}

gobin benchtable
for s in "${suites[@]}"; do
	raw=$out/$s.txt
	machine >"$raw"
	echo >&2
	echo "== $s" >&2
	echo
	echo "## $s"
	"suite_$s"
	echo "raw output: $raw"
done
