#!/usr/bin/env bash
# Reproduces the figures in docs/BENCHMARKS.md.
#   scripts/bench.sh sqlite                      # embedded SQLite in a temp dir
#   scripts/bench.sh postgres postgres://postgres@127.0.0.1:5432/postgres
# Env: PATIENTS (10000), SECONDS_PER_RUN (8), CLIENTS (64), SCENARIOS (all, in the order below),
# DB_MAX_CONNECTIONS (unset: the server's default, `kapstone serve --help`), PG_DATABASE
# (kapstone_bench; dropped and created), BIN (prebuilt binaries), PORT (18080). Targets 127.0.0.1 only.
# Before each HTTP scenario the bare engine's durable commit rate is measured on the same
# database (kapstone-bench --bare-database-url), and the scenario is reported as a ratio to it.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
PATIENTS=${PATIENTS:-10000}
SECS=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-64}
# The server's own default read pool unless DB_MAX_CONNECTIONS is given.
POOL=()
if [ -n "${DB_MAX_CONNECTIONS:-}" ]; then POOL=(--db-max-connections "$DB_MAX_CONNECTIONS"); fi
PORT=${PORT:-18080}
# Sign-in goes last: the server allows 20 sign-ins per account and 60 per address in 15 minutes
# (README, "Rate limits"), so beyond them it measures the refusals (429), and the other
# scenarios, which sign in once each, must come first.
SCENARIOS=${SCENARIOS:-"health page-view patient-read patient-page eligibility floor session-view session-record vitals sign-in"}
PW='bench password 2026'
# BIN: take the binaries from there instead of building them (e.g. to measure an older build).
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p kapstone -p kapstone-bench
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

case "$BACKEND" in
  sqlite) URL="sqlite://$WORK/kapstone.db" ;;
  postgres)
    ADMIN=${2:?give the admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres}
    PGDB=${PG_DATABASE:-kapstone_bench}
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $PGDB" -c "CREATE DATABASE $PGDB"
    URL="${ADMIN%/*}/$PGDB" ;;
  *) echo "backend is sqlite or postgres"; exit 2 ;;
esac

echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"
echo "# data: $PATIENTS synthetic patients on $BACKEND"
$BIN/kapstone demo --database-url "$URL" --password "$PW" --scale "$PATIENTS" | tail -1

echo "# store: bare engine vs audited reads (16 tasks, 5 s each)"
$BIN/kapstone-store-bench --database-url "$URL" --seconds 5 --clients 16

$BIN/kapstone serve --database-url "$URL" --bind 127.0.0.1:$PORT "${POOL[@]}" \
  >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
echo "# http: $CLIENTS clients (sign-in: 8), ${SECS}s measured after 2s warm-up"
export KAPSTONE_BENCH_PASSWORD="$PW"
export KAPSTONE_BENCH_BARE_DATABASE_URL="$URL"
for s in $SCENARIOS; do
  case "$s" in
    sign-in) n=8 ;;
    floor|session-view|session-record) n=16 ;;
    *) n=$CLIENTS ;;
  esac
  $BIN/kapstone-bench --base-url http://127.0.0.1:$PORT --scenario "$s" --clients "$n" \
    --duration-secs "$SECS" --warmup-secs 2 --email nurse@demo.kapstone.test --json 2>/dev/null
  echo
done
echo "# server RSS after the runs: $(awk '/^Rss/{print $2}' /proc/$SERVER/smaps_rollup) KiB"
kill -TERM $SERVER; wait $SERVER || true
start=$(date +%s.%N); $BIN/kapstone audit verify --database-url "$URL" 2>/dev/null; end=$(date +%s.%N)
echo "# audit verify took $(echo "$end - $start" | bc) s"
