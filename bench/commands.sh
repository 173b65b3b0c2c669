#!/usr/bin/env bash
# bench/commands.sh: the runner cmd/procrastinate beside GNU parallel,
# xargs -P and rush, and a bare ForkExec loop as the floor, in one run on
# one machine; then what each leaves running when things go wrong.
#
#   bash bench/commands.sh            # N=2000 jobs, 2 at a time
#   N=500 ROUNDS=3 bash bench/commands.sh
#
# Speed: N x /bin/true, and N x `echo {}` kept in order (-k); jobs per
# second (of wall time) and CPU per job (user + system of the tool and
# everything it started), the best round of ROUNDS (default 1).
#
# Safety, with each tool:
#   killed   the tool SIGKILLed while 4 jobs run: their processes alive 1.5 s later
#   timeout  a 1 s timeout on 4 jobs that each start a grandchild: alive after the tool returned
#   daemon   4 jobs that each start a daemon (setsid): alive after the tool returned
# Each case's sleeps run a link to sleep(1) whose name is a fresh marker,
# so that they are counted by name whatever shell runs them, and the
# script kills what is left of them, by pid, after counting.
#
# rush is built from its source with the Go module proxy into a temporary
# GOBIN (RUSH_VERSION, default v0.5.4); where that fails, or parallel or
# xargs is missing, their rows are left out and the script says so.
set -euo pipefail
if [[ "${CI:-}" == "true" ]]; then
	echo "bench/commands.sh: not run in CI" >&2
	exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-2000}
rounds=${ROUNDS:-1}
jobs=2
export GOWORK=off
unset GORACE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && go build -o "$tmp/procrastinate" ./cmd/procrastinate)
(cd "$root/bench" && go build -o "$tmp/forkexec" ./forkexec)
ours="$tmp/procrastinate"
parallel=$(command -v parallel || true)
if [[ -n $parallel ]] && ! "$parallel" --version 2>/dev/null | grep -q "GNU parallel"; then
	echo "bench/commands.sh: $parallel is not GNU parallel; its rows are left out" >&2
	parallel=""
fi
[[ -n $parallel ]] || echo "bench/commands.sh: GNU parallel is not installed (apt-get install parallel); its rows are left out" >&2
rush=""
if (mkdir -p "$tmp/gobin" && cd "$tmp" && GOBIN="$tmp/gobin" GOFLAGS=-mod=mod go install "github.com/shenwei356/rush@${RUSH_VERSION:-v0.5.4}") >"$tmp/rush.log" 2>&1; then
	rush="$tmp/gobin/rush"
else
	echo "bench/commands.sh: rush ${RUSH_VERSION:-v0.5.4} could not be built from the module proxy; its rows are left out:" >&2
	tail -2 "$tmp/rush.log" | sed 's/^/    /' >&2
fi
seq "$n" >"$tmp/in"

# measure NAME CMD...: runs CMD (stdout to /dev/null) ROUNDS times, prints
# the best round's jobs/s and CPU per job.
measure() {
	local name=$1
	shift
	local best="" line
	for ((r = 0; r < rounds; r++)); do
		line=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>"$tmp/err"; } 2>&1 ) || {
			echo "bench/commands.sh: $name failed: $(tail -1 "$tmp/err")" >&2
			return 0
		}
		if [[ -z $best ]] || awk -v a="$line" -v b="$best" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then
			best=$line
		fi
	done
	awk -v name="$name" -v n="$n" -v t="$best" 'BEGIN {
		split(t, x, " ")
		printf "  %-34s %9.0f jobs/s %9.2f ms CPU/job %8.2f s\n", name, n / x[1], (x[2] + x[3]) * 1000 / n, x[1]
	}'
}

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $n jobs, $jobs at a time, best of $rounds"
echo
echo "$n x /bin/true"
measure "bare ForkExec loop (floor)" "$tmp/forkexec" -j "$jobs" -n "$n" /bin/true
measure "procrastinate" "$ours" -j "$jobs" /bin/true :::: "$tmp/in"
[[ -z $parallel ]] || measure "GNU parallel" "$parallel" --will-cite -j "$jobs" /bin/true :::: "$tmp/in"
measure "xargs -P" xargs -P "$jobs" -n 1 /bin/true <"$tmp/in"
[[ -z $rush ]] || measure "rush" "$rush" -j "$jobs" /bin/true <"$tmp/in"
echo
echo "$n x echo {}, in order (-k)"
measure "procrastinate -k" "$ours" -j "$jobs" -k echo {} :::: "$tmp/in"
[[ -z $parallel ]] || measure "GNU parallel -k" "$parallel" --will-cite -j "$jobs" -k echo {} :::: "$tmp/in"
measure "xargs -P (not in order)" xargs -P "$jobs" -n 1 echo <"$tmp/in"
[[ -z $rush ]] || measure "rush -k" "$rush" -j "$jobs" -k 'echo {}' <"$tmp/in"

# alive MARK: the pids of processes whose arguments hold MARK.
alive() { pgrep -f -- "$1" || true; }
# cleanup MARK: kill what is left, by pid.
cleanup() {
	local p
	for p in $(alive "$1"); do kill -9 "$p" 2>/dev/null || true; done
}
# wait_for MARK COUNT: until COUNT processes hold MARK (at most 20 s).
wait_for() {
	local i
	for ((i = 0; i < 200; i++)); do
		[[ $(alive "$1" | wc -l) -ge $2 ]] && return 0
		sleep 0.1
	done
	return 1
}

# newmark: a fresh marker, and a link to sleep named with it ($slp).
newmark() {
	mark="procrastinate-bench-$RANDOM$RANDOM"
	slp="$tmp/$mark"
	ln -s "$(command -v sleep)" "$slp"
}

# safety NAME KIND: the three cases with one tool.
safety() {
	local name=$1 kind=$2
	local killed timeout daemon job
	# killed: 4 jobs that sleep, the tool SIGKILLed, alive 1.5 s later.
	newmark
	case $kind in
	ours) "$ours" -j4 "$slp" 1000 ::: 1 2 3 4 & ;;
	parallel) "$parallel" --will-cite -j4 "$slp" 1000 ::: 1 2 3 4 & ;;
	xargs) printf '%s\n' 1 2 3 4 | xargs -P4 -I{} "$slp" 1000 {} & ;;
	rush) printf '%s\n' 1 2 3 4 | "$rush" -j 4 "$slp 1000 {}" & ;;
	esac
	local tool=$!
	wait_for "$mark" 4 || true
	kill -9 "$tool" 2>/dev/null || true
	wait "$tool" 2>/dev/null || true
	sleep 1.5
	killed=$(alive "$mark" | wc -l)
	cleanup "$mark"

	# timeout: each job starts a grandchild and waits; a 1 s timeout.
	newmark
	job="$slp 1000 & wait"
	case $kind in
	ours) "$ours" -j4 --timeout 1 "$job" ::: 1 2 3 4 >/dev/null 2>&1 || true ;;
	parallel) "$parallel" --will-cite -j4 --timeout 1 "$job" ::: 1 2 3 4 >/dev/null 2>&1 || true ;;
	xargs) printf '%s\n' 1 2 3 4 | xargs -P4 -I{} timeout 1 sh -c "$job" >/dev/null 2>&1 || true ;;
	rush) printf '%s\n' 1 2 3 4 | "$rush" -j 4 -t 1 "$job" >/dev/null 2>&1 || true ;;
	esac
	timeout=$(alive "$mark" | wc -l)
	cleanup "$mark"

	# daemon: each job starts a daemon (setsid, a fork) and returns.
	newmark
	job="setsid -f $slp 1000"
	case $kind in
	ours) "$ours" -j4 "$job" ::: 1 2 3 4 >/dev/null 2>&1 || true ;;
	parallel) "$parallel" --will-cite -j4 "$job" ::: 1 2 3 4 >/dev/null 2>&1 || true ;;
	xargs) printf '%s\n' 1 2 3 4 | xargs -P4 -I{} sh -c "$job" >/dev/null 2>&1 || true ;;
	rush) printf '%s\n' 1 2 3 4 | "$rush" -j 4 "$job" >/dev/null 2>&1 || true ;;
	esac
	daemon=$(alive "$mark" | wc -l)
	cleanup "$mark"
	printf "  %-34s %6s %8s %7s\n" "$name" "$killed/4" "$timeout/4" "$daemon/4"
}

echo
echo "left alive (of 4 jobs)              killed  timeout  daemon"
safety "procrastinate" ours
[[ -z $parallel ]] || safety "GNU parallel" parallel
safety "xargs -P (timeout(1) per job)" xargs
[[ -z $rush ]] || safety "rush" rush
