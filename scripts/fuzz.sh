#!/usr/bin/env bash
# Runs Kapstone's fuzz targets with cargo-fuzz (libFuzzer) from the committed corpus.
#   scripts/fuzz.sh              # every target, 60 s each
#   SECONDS_PER_TARGET=600 scripts/fuzz.sh import_files
# Starts from the named seeds (fuzz/seeds/<target>: the shipped content files, lines of the demo
# clinic's export, hand-made answers) and the kept corpus (fuzz/corpus/<target>); new inputs that
# reach new code are added to the corpus. Before committing, minimise it and keep small inputs:
#   RUSTC_BOOTSTRAP=1 cargo fuzz cmin --fuzz-dir fuzz -s none <target> fuzz/corpus/<target>
#   find fuzz/corpus -type f -size +1024c -delete
# A panic stops the run and leaves the input in fuzz/artifacts/<target>/: fix the code and add the
# input to fuzz/seeds/<target>/ under a name that says what it is, so `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_PER_TARGET:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(questionnaire_answers content_files import_files)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes unstable compiler flags; the machine has only the stable toolchain, whose
# compiler accepts them with RUSTC_BOOTSTRAP. No sanitizer: the code forbids `unsafe`, so what
# the fuzzer looks for is a panic (a 4xx-worthy input that crashes instead).
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/fuzz}
for t in "${TARGETS[@]}"; do
  echo "=== fuzz $t for ${SECS}s"
  log=$(mktemp)
  set +e
  cargo fuzz run --fuzz-dir fuzz -s none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- -max_total_time="$SECS" \
    -max_len=65536 -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)|panicked|SUMMARY' "$log" || tail -20 "$log"
  rm -f "$log"
  [ "$status" -eq 0 ] || { echo "=== fuzz $t FAILED (exit $status); the input is in fuzz/artifacts/$t/"; exit "$status"; }
done
echo "=== fuzzing passed"
