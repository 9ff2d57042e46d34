#!/usr/bin/env bash
# Start-up time on an existing database: from launching `kapstone serve` to the first 200 from
# /healthz, several times (docs/BENCHMARKS.md). The database is not changed beyond what a start
# does (migrations already applied, background jobs may run).
#   scripts/startup-time.sh sqlite:///tmp/clinic.db
#   scripts/startup-time.sh postgres://postgres@127.0.0.1:5432/clinic
# Env: RUNS (5), KAPSTONE (target/release/kapstone), PORT (18090). Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
URL=${1:?give the database URL of an existing clinic}
RUNS=${RUNS:-5}
KAPSTONE=${KAPSTONE:-${CARGO_TARGET_DIR:-target}/release/kapstone}
PORT=${PORT:-18090}
[ -x "$KAPSTONE" ] || { echo "build first: cargo build --release -p kapstone"; exit 2; }
LOG=$(mktemp)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -f "$LOG"' EXIT
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s%N)
  "$KAPSTONE" serve --database-url "$URL" --bind "127.0.0.1:$PORT" >"$LOG" 2>&1 &
  SERVER=$!
  ok=
  for _ in $(seq 1 4000); do
    if curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; then ok=1; break; fi
    kill -0 $SERVER 2>/dev/null || break
    sleep 0.002
  done
  end=$(date +%s%N)
  rss=$(awk '/^Rss/{print $2}' /proc/$SERVER/smaps_rollup 2>/dev/null || echo '?')
  kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
  SERVER=
  if [ -z "$ok" ]; then echo "run $i: the server did not answer"; cat "$LOG"; exit 1; fi
  echo "run $i: $(( (end - start) / 1000000 )) ms to the first /healthz 200 (RSS then: $rss KiB)"
done
