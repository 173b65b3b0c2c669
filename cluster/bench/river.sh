#!/usr/bin/env bash
# The cluster's benchmarks beside River (a job queue on PostgreSQL), in one
# run: no-op calls through an embedded NATS server and three workers,
# the raw JetStream loop, a local dispatcher, and River's no-op jobs on a
# local PostgreSQL. River is skipped, with the reason, when PostgreSQL
# cannot be installed or started here.
#
#   bash bench/river.sh            # from the cluster module's directory
#   N=50000 COUNT=5 bash bench/river.sh
#   SKIP_CLUSTER=1 POLL=1ms bash bench/river.sh   # River alone, polling every ms
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
TRIPS=${TRIPS:-100}
COUNT=${COUNT:-3}

POLL=${POLL:-100ms}

if [ -z "${SKIP_CLUSTER:-}" ]; then
	echo "== the cluster, the raw JetStream loop and a local dispatcher ($N calls, $COUNT rounds)"
	go test -run '^$' -bench 'Throughput|RoundTrip' -benchtime "${N}x" -count "$COUNT" . | grep -E '^Benchmark'
fi

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
bin=$(pgbin)
if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "== installing PostgreSQL (apt-get install postgresql)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1; } || true
	bin=$(pgbin)
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
	echo "== River skipped: PostgreSQL is not installed, and apt-get install postgresql did not install it (needs root and Debian's packages)"
	exit 0
fi

# A throw-away cluster on a Unix socket only, owned by the postgres user
# when run as root (PostgreSQL refuses to run as root).
dir=$(mktemp -d)
as=()
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || { echo "== River skipped: running as root and there is no postgres user"; exit 0; }
	chown postgres "$dir"
	as=(runuser -u postgres --)
fi
stop() {
	"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT
if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
	! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w \
		-o "-c listen_addresses='' -k $dir -c fsync=on -c max_connections=200" start >/dev/null; then
	echo "== River skipped: PostgreSQL did not start:"
	tail -5 "$dir/initdb.log" "$dir/pg.log" 2>/dev/null || true
	exit 0
fi
"${as[@]}" "$bin/createdb" -h "$dir" -U postgres bench

echo "== River on PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ($N jobs, $COUNT rounds)"
for _ in $(seq "$COUNT"); do
	(cd bench/river && GOWORK=off go run . -dsn "postgres:///bench?host=$dir&user=postgres" -n "$N" -trips "$TRIPS" -poll "$POLL")
done
