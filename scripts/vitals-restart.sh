#!/usr/bin/env bash
# Vitals writes on sessions that grow long, then on the same database after a restart (the server's
# sessions are no longer folded in memory: each one's first write replays its log). docs/BENCHMARKS.md,
# seventh session.
#   scripts/vitals-restart.sh sqlite
#   scripts/vitals-restart.sh postgres postgres://postgres@127.0.0.1:5432/postgres
# Env: BIN (prebuilt binaries; else a release build), RUNS (4), PORT (18090). Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
RUNS=${RUNS:-4}
PORT=${PORT:-18090}
PW='bench password 2026'
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p kapstone -p kapstone-bench
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
WORK=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
case "$BACKEND" in
  sqlite) URL="sqlite://$WORK/kapstone.db" ;;
  postgres)
    ADMIN=${2:?give the admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres}
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS kapstone_restart" -c "CREATE DATABASE kapstone_restart"
    URL="${ADMIN%/*}/kapstone_restart" ;;
  *) echo "backend is sqlite or postgres"; exit 2 ;;
esac
echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%F); $BACKEND"
$BIN/kapstone demo --database-url "$URL" --password "$PW" --scale 10000 | tail -1
export KAPSTONE_BENCH_PASSWORD="$PW"
serve() {
  $BIN/kapstone serve --database-url "$URL" --bind 127.0.0.1:$PORT --db-max-connections 16 >"$WORK/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
}
# One vitals run: writes/s, refusals, p50 and p99.
run() {
  $BIN/kapstone-bench --base-url http://127.0.0.1:$PORT --scenario vitals --clients 64 --duration-secs "$1" \
    --warmup-secs "$2" --email nurse@demo.kapstone.test --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin); l = d.get("latency_us") or {}
print("%.0f writes/s, %s refused, p50 %.1f ms, p99 %.1f ms" % (d["ok_per_sec"], d["errors"], l.get("p50", 0) / 1000, l.get("p99", 0) / 1000))'
}
serve
for i in $(seq 1 "$RUNS"); do echo -n "run $i (8 s after 2 s warm-up): "; run 8 2; done
kill -TERM $SERVER; wait $SERVER || true
serve
echo -n "after a restart, the first 5 s: "; run 5 0
echo -n "then 8 s: "; run 8 0
