#!/usr/bin/env bash
# API fuzzing (issue 9): schemathesis from PyPI generates requests from /api/v1/openapi.json and
# checks that no answer is a 5xx and every answer matches the document (status, content type,
# schema). Runs against a local server with the demo clinic, once as a prescriber and once as an
# admin (between them every operation is reachable). Targets 127.0.0.1 only.
#   scripts/schemathesis.sh                     # SQLite, 25 examples per operation
#   MAX_EXAMPLES=200 scripts/schemathesis.sh postgres postgres://postgres@127.0.0.1:5432/postgres
#   BIN=target/release scripts/schemathesis.sh ...   # a server already built there (nothing is built)
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
MAX_EXAMPLES=${MAX_EXAMPLES:-25}
PORT=18282
BASE="http://127.0.0.1:$PORT"
PW='schemathesis password 2026'
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

VENV=${SECURITY_VENV:-target/security-venv}
[ -x "$VENV/bin/st" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "schemathesis==4.32.5"; }
# The whole workspace, as `cargo test --workspace` builds it: after the test suite nothing is rebuilt.
if [ -z "${BIN:-}" ]; then
  cargo build -q --workspace --all-targets
  BIN=target/debug
fi
case "$BACKEND" in
  sqlite) URL="sqlite://$WORK/kapstone.db" ;;
  postgres)
    ADMIN=${2:?give the admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres}
    psql "$ADMIN" -qc 'DROP DATABASE IF EXISTS kapstone_schemathesis' -c 'CREATE DATABASE kapstone_schemathesis'
    URL="${ADMIN%/*}/kapstone_schemathesis" ;;
  *) echo "backend is sqlite or postgres"; exit 2 ;;
esac
"$BIN/kapstone" --log-format json serve --database-url "$URL" --demo --demo-password "$PW" \
  --bind "127.0.0.1:$PORT" --jobs-every-secs 0 >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done

token() {
  curl -sf "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$PW\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
status=0
for who in prescriber admin; do
  echo "=== schemathesis as $who, $MAX_EXAMPLES examples per operation"
  # Signing out would end the run's own session; everything else is fair game.
  "$VENV/bin/st" run "$BASE/api/v1/openapi.json" --url "$BASE" -H "Authorization: Bearer $(token "$who@demo.kapstone.test")" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/v1/auth/logout --max-examples "$MAX_EXAMPLES" --seed 2026 --workers 2 \
    --phases examples,coverage,fuzzing --warnings off --report junit --report-dir "$WORK/report-$who" \
    || status=$?
done
fivexx=$(grep -c '"status":5' "$WORK/serve.log" || true)
echo "# requests answered: $(grep -c '"status":' "$WORK/serve.log" || true); with a 5xx status: $fivexx"
[ "$fivexx" -eq 0 ] || status=1
exit "$status"
