#!/usr/bin/env bash
# The backup drill (issue 9): build a large clinic, back it up while nothing else runs, restore the
# backup into a new place, and prove the copy is whole: SQLite's integrity check, the audit chain,
# every controlled-substance ledger chain, and the row count of every table equal to the source's.
#
#   scripts/backup-drill.sh                  # 100,000 synthetic patients in a temp dir
#   SCALE=20000 scripts/backup-drill.sh      # smaller
#   KAPSTONE=target/debug/kapstone WORK=/srv/drill scripts/backup-drill.sh
#
# Env: SCALE (100000), KAPSTONE (the binary; default: build target/release/kapstone), WORK (a new
# temp dir, removed at the end unless KEEP=1). Needs the sqlite3 command-line tool. Exits non-zero
# on any failed check. Record a run's figures in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-100000}
PW='drill password 2026'
export KAPSTONE_LOG=${KAPSTONE_LOG:-warn}
if [[ -z "${KAPSTONE:-}" ]]; then
  cargo build --release -q -p kapstone
  KAPSTONE=${CARGO_TARGET_DIR:-target}/release/kapstone
fi
command -v sqlite3 >/dev/null || { echo "backup drill: the sqlite3 tool is needed for the checks" >&2; exit 2; }
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$WORK"' EXIT
SOURCE="$WORK/source/kapstone.db"
BACKUP="$WORK/backup/kapstone-backup.db"
RESTORED="$WORK/restored/kapstone.db"
mkdir -p "$WORK/backup"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
size() { du -h "$1" | cut -f1; }

echo "# backup drill: $(nproc) cores, $(date -u +%F), $SCALE synthetic patients, $KAPSTONE"

t=$(now)
"$KAPSTONE" demo --database-url "sqlite://$SOURCE" --password "$PW" --scale "$SCALE" >/dev/null
echo "build:    $(since "$t") s, $(size "$SOURCE")"

t=$(now)
"$KAPSTONE" backup --database-url "sqlite://$SOURCE" --out "$BACKUP" >/dev/null
echo "backup:   $(since "$t") s, $(size "$BACKUP")"

t=$(now)
"$KAPSTONE" restore "$BACKUP" --database-url "sqlite://$RESTORED" >/dev/null
echo "restore:  $(since "$t") s (includes the audit chain check)"

t=$(now)
integrity=$(sqlite3 "$RESTORED" 'PRAGMA integrity_check;')
[[ "$integrity" == "ok" ]] || { echo "integrity check FAILED: $integrity"; exit 1; }
echo "integrity: ok ($(since "$t") s)"

t=$(now)
audit=$("$KAPSTONE" audit verify --database-url "sqlite://$RESTORED") || { echo "audit chain FAILED: $audit"; exit 1; }
echo "audit:    $audit ($(since "$t") s)"

t=$(now)
ledger=$("$KAPSTONE" ledger verify --database-url "sqlite://$RESTORED" | tail -1) \
  || { echo "ledger chains FAILED: $ledger"; exit 1; }
echo "ledger:   $ledger ($(since "$t") s)"

# Every table, the same number of rows on both sides.
count_all() {
  local db=$1
  sqlite3 "$db" "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name;" |
    while read -r table; do
      echo "$table $(sqlite3 "$db" "SELECT COUNT(*) FROM \"$table\";")"
    done
}
t=$(now)
count_all "$SOURCE" >"$WORK/source.counts"
count_all "$RESTORED" >"$WORK/restored.counts"
if ! diff -u "$WORK/source.counts" "$WORK/restored.counts"; then
  echo "row counts FAILED: the restored copy differs from the source"
  exit 1
fi
tables=$(wc -l <"$WORK/source.counts")
rows=$(awk '{ s += $2 } END { print s }' "$WORK/source.counts")
echo "rows:     $rows rows in $tables tables, equal in the source and the copy ($(since "$t") s)"
for t in patients audit_events cs_ledger_entries appointments questionnaire_responses; do
  grep "^$t " "$WORK/source.counts" || true
done
echo "backup drill passed"
