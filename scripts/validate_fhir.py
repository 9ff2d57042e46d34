#!/usr/bin/env python3
"""Validates every resource of a FHIR bulk export (a folder of NDJSON files) with an independent
implementation: the `fhir.resources` package's R4B models (pydantic; FHIR 4.3, structurally the
same as R4 for the types Kapstone exports). Each line must parse as its type: known elements
only, required elements present, primitives well-formed (ids, dates, instants, codes, URIs). On
top, the codes of the required bindings Kapstone fills are checked against their value sets.

Usage: validate_fhir.py EXPORT_DIR [MIN_TYPES]   (exit 1 on any invalid resource)
"""
import json
import sys
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

# Required bindings (FHIR R4 value sets) of the elements Kapstone sends.
REQUIRED_CODES = {
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Appointment", "status"): {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                                "entered-in-error", "checked-in", "waitlist"},
    ("Encounter", "status"): {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                              "entered-in-error", "unknown"},
    ("Observation", "status"): {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                                "entered-in-error", "unknown"},
    ("MedicationAdministration", "status"): {"in-progress", "not-done", "on-hold", "completed", "entered-in-error",
                                             "stopped", "unknown"},
    ("MedicationStatement", "status"): {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold",
                                        "unknown", "not-taken"},
    ("QuestionnaireResponse", "status"): {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
    ("Questionnaire", "status"): {"draft", "active", "retired", "unknown"},
    ("Consent", "status"): {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"},
    ("Location", "status"): {"active", "suspended", "inactive"},
}


def main() -> int:
    folder = Path(sys.argv[1])
    min_types = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    files = sorted(folder.glob("*.ndjson"))
    total, bad = 0, 0
    for f in files:
        kind = f.stem
        model = get_fhir_model_class(kind)
        n = 0
        with f.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                n += 1
                try:
                    data = json.loads(line)
                    if data.get("resourceType") != kind:
                        raise ValueError(f"resourceType {data.get('resourceType')!r} in {kind}.ndjson")
                    model.model_validate(data)
                    for (rtype, element), allowed in REQUIRED_CODES.items():
                        if rtype == kind and element in data and data[element] not in allowed:
                            raise ValueError(f"{element} {data[element]!r} is not in its required value set")
                except Exception as e:  # noqa: BLE001 - report every failure and go on
                    bad += 1
                    if bad <= 20:
                        print(f"INVALID {f.name}:{number}: {str(e)[:500]}")
        print(f"{kind}: {n} resources")
        total += n
    print(f"validated {total} resources in {len(files)} files with fhir.resources (R4B models): {bad} invalid")
    if len(files) < min_types:
        print(f"expected at least {min_types} resource types")
        return 1
    return 1 if bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
