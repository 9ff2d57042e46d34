#!/usr/bin/env bash
# Reproduces the figures in docs/BENCHMARKS.md.
#   scripts/bench.sh sqlite                      # embedded SQLite in a temp dir
#   scripts/bench.sh postgres postgres://postgres@127.0.0.1:5432/postgres
# Env: PATIENTS (10000), SECONDS_PER_RUN (8), CLIENTS (64). Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
PATIENTS=${PATIENTS:-10000}
SECS=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-64}
PW='bench password 2026'
cargo build --release -q -p kapstone -p kapstone-bench
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

case "$BACKEND" in
  sqlite) URL="sqlite://$WORK/kapstone.db" ;;
  postgres)
    ADMIN=${2:?give the admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres}
    psql "$ADMIN" -qc 'DROP DATABASE IF EXISTS kapstone_bench' -c 'CREATE DATABASE kapstone_bench'
    URL="${ADMIN%/*}/kapstone_bench" ;;
  *) echo "backend is sqlite or postgres"; exit 2 ;;
esac

echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"
echo "# data: $PATIENTS synthetic patients on $BACKEND"
$BIN/kapstone demo --database-url "$URL" --password "$PW" --scale "$PATIENTS" | tail -1

echo "# store: bare engine vs audited reads (16 tasks, 5 s each)"
$BIN/kapstone-store-bench --database-url "$URL" --seconds 5 --clients 16

$BIN/kapstone serve --database-url "$URL" --bind 127.0.0.1:18080 --db-max-connections 16 >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
echo "# http: $CLIENTS clients (sign-in: 8), ${SECS}s measured after 2s warm-up"
export KAPSTONE_BENCH_PASSWORD="$PW"
for s in "health $CLIENTS" "sign-in 8" "page-view $CLIENTS" "patient-read $CLIENTS" "eligibility $CLIENTS" \
         "floor 16" "session-view 16" "session-record 16" "vitals $CLIENTS"; do
  set -- $s
  $BIN/kapstone-bench --base-url http://127.0.0.1:18080 --scenario "$1" --clients "$2" \
    --duration-secs "$SECS" --warmup-secs 2 --email nurse@demo.kapstone.test --json 2>/dev/null
  echo
done
echo "# server RSS after the runs: $(awk '/^Rss/{print $2}' /proc/$SERVER/smaps_rollup) KiB"
kill -TERM $SERVER; wait $SERVER || true
start=$(date +%s.%N); $BIN/kapstone audit verify --database-url "$URL" 2>/dev/null; end=$(date +%s.%N)
echo "# audit verify took $(echo "$end - $start" | bc) s"
