#!/usr/bin/env bash
# SQL injection scan (issue 9): sqlmap from PyPI against every JSON API list and search endpoint
# that takes filter, range or paging parameters, and the FHIR searches, on a local server with
# the demo clinic. Targets 127.0.0.1 only.
#   scripts/sqlmap.sh                    # SQLite in a temp dir
#   scripts/sqlmap.sh postgres postgres://postgres@127.0.0.1:5432/postgres
# Env: LEVEL (2), RISK (1). Exits non-zero when sqlmap reports an injectable parameter, leaves a
# parameter untested, or the server answers any request with a 5xx.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
LEVEL=${LEVEL:-2}
RISK=${RISK:-1}
PORT=18181
BASE="http://127.0.0.1:$PORT"
PW='sqlmap password 2026'
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

VENV=${SQLMAP_VENV:-target/sqlmap-venv}
[ -x "$VENV/bin/sqlmap" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q sqlmap; }
cargo build -q -p kapstone
case "$BACKEND" in
  sqlite) URL="sqlite://$WORK/kapstone.db" ;;
  postgres)
    ADMIN=${2:?give the admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres}
    psql "$ADMIN" -qc 'DROP DATABASE IF EXISTS kapstone_sqlmap' -c 'CREATE DATABASE kapstone_sqlmap'
    URL="${ADMIN%/*}/kapstone_sqlmap" ;;
  *) echo "backend is sqlite or postgres"; exit 2 ;;
esac
target/debug/kapstone --log-format json serve --database-url "$URL" --demo --demo-password "$PW" --bind "127.0.0.1:$PORT" \
  --jobs-every-secs 0 >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done

token() {
  curl -sf "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$PW\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
ADMIN_T=$(token admin@demo.kapstone.test)
NURSE_T=$(token nurse@demo.kapstone.test)
PRESCRIBER_T=$(token prescriber@demo.kapstone.test)
PATIENT=$(curl -sf "$BASE/api/v1/patients?limit=1" -H "Authorization: Bearer $NURSE_T" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
TODAY=$(date -u +%F)
NEXT=$(date -u -d '+7 days' +%F)

# (token, URL): every query parameter of each URL is tested.
TARGETS=(
  "$NURSE_T|$BASE/api/v1/patients?q=Rivera&limit=10"
  "$NURSE_T|$BASE/api/v1/appointments?from=${TODAY}T00:00:00Z&to=${NEXT}T00:00:00Z"
  "$NURSE_T|$BASE/api/v1/appointments/slots?kind=consultation&from=${TODAY}T00:00:00Z&to=${NEXT}T00:00:00Z&patient_id=$PATIENT&limit=5"
  "$NURSE_T|$BASE/api/v1/floor?location=main"
  "$NURSE_T|$BASE/api/v1/cs/ledger?from=$TODAY&to=$NEXT&kind=receipt&product=ketamine&lot=L1&after_seq=0&limit=10"
  "$NURSE_T|$BASE/api/v1/cs/lot?product=ketamine&lot=L1"
  "$ADMIN_T|$BASE/api/v1/audit?user=x&patient=$PATIENT&action=patient.read&from=$TODAY&to=$NEXT"
  "$PRESCRIBER_T|$BASE/api/v1/reports/outcomes?from=$TODAY&to=$NEXT&location=main"
  "$PRESCRIBER_T|$BASE/fhir/R4/Patient?name=Rivera&birthdate=1980-01-01&_count=5"
  "$PRESCRIBER_T|$BASE/fhir/R4/Observation?patient=Patient/$PATIENT&code=8480-6&date=ge$TODAY&_count=5"
  "$PRESCRIBER_T|$BASE/fhir/R4/Appointment?patient=Patient/$PATIENT&status=booked&date=ge$TODAY"
)
found=0
for t in "${TARGETS[@]}"; do
  tok=${t%%|*}; url=${t#*|}
  echo "=== sqlmap ${url#$BASE}"
  out=$("$VENV/bin/sqlmap" -u "$url" --headers="Authorization: Bearer $tok" --batch --level="$LEVEL" \
    --risk="$RISK" --flush-session --output-dir="$WORK/sqlmap" --disable-coloring 2>&1 || true)
  if grep -qiE "is vulnerable|sqlmap identified the following injection|Parameter: .* \((GET|POST)\)" <<<"$out"; then
    echo "$out" | tail -40; found=1
  else
    params=$(tr '&' '\n' <<<"${url#*\?}" | wc -l)
    clean=$(grep -cE "GET parameter '.*' does not seem to be injectable" <<<"$out" || true)
    echo "  $clean of $params parameters tested, none injectable"
    [ "$clean" -eq "$params" ] || { echo "$out" | tail -30; echo "  not every parameter was tested"; found=1; }
  fi
done
fivexx=$(grep -c '"status":5' "$WORK/serve.log" || true)
echo "# requests answered during the scan: $(grep -c '"status":' "$WORK/serve.log" || true); with a 5xx status: $fivexx"
[ "$fivexx" -eq 0 ] || found=1
[ "$found" -eq 0 ] && echo "=== no injectable parameter found" || { echo "=== INJECTABLE PARAMETER FOUND"; exit 1; }
