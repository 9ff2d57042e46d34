#!/usr/bin/env bash
# The live floor board's latency under load (issue 9), on PostgreSQL with two server processes:
# 20 dosing sessions on today's floor, `kapstone-bench --scenario vitals` writing through server A
# with CLIENTS clients, and `kapstone-floor-latency` timing how long a change made through A takes
# to reach a board on B (another process) and on A itself.
#   scripts/floor-latency.sh postgres://postgres@127.0.0.1:5432/postgres
# Env: CLIENTS (64), PROBES (200), BIN (prebuilt binaries). Release build. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN=${1:-postgres://postgres@127.0.0.1:5432/postgres}
CLIENTS=${CLIENTS:-64}
PROBES=${PROBES:-200}
PW='bench password 2026'
# BIN: take the binaries from there instead of building them.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p kapstone -p kapstone-bench
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

psql "$ADMIN" -qc 'DROP DATABASE IF EXISTS kapstone_floor_bench' -c 'CREATE DATABASE kapstone_floor_bench'
URL="${ADMIN%/*}/kapstone_floor_bench"
echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"
# The demo has three sessions on the floor; 17 more make the issue's 20.
$BIN/kapstone demo --database-url "$URL" --password "$PW" --floor-sessions 17 | tail -1
for port in 18091 18092; do
  $BIN/kapstone serve --database-url "$URL" --bind 127.0.0.1:$port >"$WORK/serve-$port.log" 2>&1 &
  PIDS+=($!)
done
for port in 18091 18092; do
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
done
export KAPSTONE_BENCH_PASSWORD="$PW"
DURATION=$(( PROBES * 3 / 10 + 30 ))
echo "# write load: vitals, $CLIENTS clients on server A for up to ${DURATION}s"
$BIN/kapstone-bench --base-url http://127.0.0.1:18091 --scenario vitals --clients "$CLIENTS" \
  --duration-secs "$DURATION" --warmup-secs 1 --email nurse@demo.kapstone.test >"$WORK/load.txt" 2>&1 &
LOAD=$!
PIDS+=($LOAD)
sleep 3
# The probes sign in as another nurse: sign-in is rate-limited per account.
PROBE_AS=floor-nurse-1@demo.kapstone.test
$BIN/kapstone-floor-latency --write-url http://127.0.0.1:18091 --watch-url http://127.0.0.1:18092 --probes "$PROBES" --email $PROBE_AS
$BIN/kapstone-floor-latency --write-url http://127.0.0.1:18091 --watch-url http://127.0.0.1:18091 --probes "$PROBES" --email $PROBE_AS
wait $LOAD || true
echo "# the write load during the probes:"
cat "$WORK/load.txt"
