#!/usr/bin/env bash
# Exports the demo clinic as FHIR NDJSON (the bulk export's own code, through
# kapstone-fhir-bench) and validates every resource with an independent FHIR implementation:
# the `fhir.resources` Python package from PyPI, installed in a throwaway virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${TMPDIR:-/tmp}/kapstone-fhir-validate"
rm -rf "$WORK/export"
mkdir -p "$WORK/export"
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/pip" install -q "fhir.resources==8.3.0"
cargo run -q -p kapstone-bench --bin kapstone-fhir-bench -- --out "$WORK/export"
"$WORK/venv/bin/python" scripts/validate_fhir.py "$WORK/export" 13
