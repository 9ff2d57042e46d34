//! Observation (vital signs per the FHIR vital-signs profile, with the LOINC codes and UCUM
//! units of KAP-SPEC 8.2) and MedicationAdministration (the administration record of a dosing
//! session: product with NDC when recorded, lot and expiry, SNOMED CT route of 8.3, dose in mg).
//!
//! Ids: `{consultation}.{tag}` for the consultation's baseline vitals, `{session}.{seq}.{tag}`
//! for a session reading, `{session}.{seq}` for an administration. MOAA/S and CADSS have no
//! verified LOINC code (8.1) and are not sent.

use kapstone_domain::monitoring::Measurement;
use kapstone_domain::session::{Recorded, SessionEvent};
use kapstone_store::fhir::{ConsultationRow, EventRow};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Kind, LOINC, SNOMED, UCUM, instant, instant_of, patient_ref, reference};

/// One vital sign: (tag, profile, LOINC codes with displays, UCUM unit).
struct Vital {
    tag: &'static str,
    profile: &'static str,
    codes: &'static [(&'static str, &'static str)],
    unit: &'static str,
}

const HEART_RATE: Vital = Vital { tag: "hr", profile: "heartrate", codes: &[("8867-4", "Heart rate")], unit: "/min" };
/// US Core's pulse oximetry uses both codes (8.2); the base profile requires 2708-6.
const SPO2: Vital = Vital {
    tag: "spo2",
    profile: "oxygensat",
    codes: &[("2708-6", "Oxygen saturation in Arterial blood"), ("59408-5", "Oxygen saturation by Pulse oximetry")],
    unit: "%",
};
const RESP_RATE: Vital =
    Vital { tag: "rr", profile: "resprate", codes: &[("9279-1", "Respiratory rate")], unit: "/min" };
const WEIGHT: Vital = Vital { tag: "wt", profile: "bodyweight", codes: &[("29463-7", "Body weight")], unit: "kg" };
const HEIGHT: Vital = Vital { tag: "ht", profile: "bodyheight", codes: &[("8302-2", "Body height")], unit: "cm" };

fn vital_signs_category() -> Value {
    json!([{ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs",
        "display": "Vital Signs",
    }] }])
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({ "value": value, "unit": unit, "system": UCUM, "code": unit })
}

fn codes(list: &[(&str, &str)]) -> Value {
    let coding: Vec<Value> = list.iter().map(|(c, d)| json!({ "system": LOINC, "code": c, "display": d })).collect();
    json!({ "coding": coding, "text": list.first().map_or("", |(_, d)| *d) })
}

struct Subject<'a> {
    id_prefix: String,
    patient: Uuid,
    at: &'a str,
    encounter: Option<Uuid>,
}

fn base(s: &Subject<'_>, tag: &str, profile: &str, code: Value) -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "id": format!("{}.{tag}", s.id_prefix),
        "meta": { "profile": [format!("http://hl7.org/fhir/StructureDefinition/{profile}")] },
        "status": "final",
        "category": vital_signs_category(),
        "code": code,
        "subject": patient_ref(s.patient),
        "effectiveDateTime": s.at,
    });
    if let Some(e) = s.encounter {
        o["encounter"] = reference(Kind::Encounter, e);
    }
    o
}

fn single(s: &Subject<'_>, v: &Vital, value: f64) -> Value {
    let mut o = base(s, v.tag, v.profile, codes(v.codes));
    o["valueQuantity"] = quantity(value, v.unit);
    o
}

/// The blood pressure panel (85354-9) with systolic (8480-6) and diastolic (8462-4) components.
fn blood_pressure(s: &Subject<'_>, systolic: f64, diastolic: f64) -> Value {
    let mut o = base(s, "bp", "bp", codes(&[("85354-9", "Blood pressure panel with all children optional")]));
    o["component"] = json!([
        { "code": codes(&[("8480-6", "Systolic blood pressure")]), "valueQuantity": quantity(systolic, "mm[Hg]") },
        { "code": codes(&[("8462-4", "Diastolic blood pressure")]), "valueQuantity": quantity(diastolic, "mm[Hg]") },
    ]);
    o
}

/// The consultation's baseline vitals (BP, heart rate, SpO2, weight, height).
pub fn baseline_vitals(r: &ConsultationRow) -> Vec<Value> {
    let Some(input) = super::clinical::input(r) else { return Vec::new() };
    let at = instant(r.recorded_at);
    let s = Subject { id_prefix: r.id.to_string(), patient: r.patient_id, at: &at, encounter: None };
    let v = &input.vitals;
    let mut out = Vec::new();
    if let (Some(sys), Some(dia)) = (v.systolic_mmhg, v.diastolic_mmhg) {
        out.push(blood_pressure(&s, sys, dia));
    }
    if let Some(hr) = v.heart_rate_bpm {
        out.push(single(&s, &HEART_RATE, hr));
    }
    if let Some(x) = v.spo2_percent {
        out.push(single(&s, &SPO2, x));
    }
    if let Some(x) = v.weight_kg {
        out.push(single(&s, &WEIGHT, x));
    }
    if let Some(x) = v.height_cm {
        out.push(single(&s, &HEIGHT, x));
    }
    out
}

fn recorded(r: &EventRow) -> Option<Recorded> {
    match serde_json::from_str(&r.payload) {
        Ok(x) => Some(x),
        Err(e) => {
            tracing::error!(session = %r.session_id, seq = r.seq, error = %e, "stored session event does not parse");
            None
        }
    }
}

/// The vital signs of one session reading (MOAA/S and CADSS readings yield none).
pub fn reading_vitals(r: &EventRow) -> Vec<Value> {
    let Some(rec) = recorded(r) else { return Vec::new() };
    let SessionEvent::Reading(reading) = rec.event else { return Vec::new() };
    let at = instant_of(reading.taken_at);
    let s = Subject {
        id_prefix: format!("{}.{}", r.session_id, r.seq),
        patient: r.patient_id,
        at: &at,
        encounter: Some(r.session_id),
    };
    let mut out = Vec::new();
    match reading.measurement {
        Measurement::BloodPressure { bp, heart_rate, spo2 } => {
            out.push(blood_pressure(&s, f64::from(bp.systolic.value()), f64::from(bp.diastolic.value())));
            if let Some(hr) = heart_rate {
                out.push(single(&s, &HEART_RATE, f64::from(hr.value())));
            }
            if let Some(x) = spo2 {
                out.push(single(&s, &SPO2, f64::from(x.value())));
            }
        }
        Measurement::Spo2Rr { spo2, resp_rate } => {
            if let Some(x) = spo2 {
                out.push(single(&s, &SPO2, f64::from(x.value())));
            }
            if let Some(x) = resp_rate {
                out.push(single(&s, &RESP_RATE, f64::from(x.value())));
            }
        }
        Measurement::Moaas { .. } | Measurement::Cadss { .. } => {}
    }
    out
}

/// SNOMED CT routes of administration and their names (KAP-SPEC 8.3).
fn route_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "37839007" => "Sublingual route",
        "54471007" => "Buccal route",
        "46713006" => "Nasal route",
        "78421000" => "Intramuscular route",
        "47625008" => "Intravenous route",
        "34206005" => "Subcutaneous route",
        "26643006" => "Oral route",
        _ => return None,
    })
}

/// The administration record of a session. The product, its NDC and lot live in a contained
/// Medication (FHIR keeps lot and expiry on Medication.batch).
pub fn administrations(r: &EventRow) -> Vec<Value> {
    let Some(rec) = recorded(r) else { return Vec::new() };
    let SessionEvent::AdministrationStarted(a) = rec.event else { return Vec::new() };
    let mut code = json!({ "text": a.product });
    if let Some(ndc) = a.ndc.as_deref().filter(|s| !s.trim().is_empty()) {
        code["coding"] = json!([{ "system": "http://hl7.org/fhir/sid/ndc", "code": ndc }]);
    }
    let mut route = json!({ "system": SNOMED, "code": a.route_snomed });
    if let Some(d) = route_display(&a.route_snomed) {
        route["display"] = json!(d);
    }
    vec![json!({
        "resourceType": "MedicationAdministration",
        "id": format!("{}.{}", r.session_id, r.seq),
        "contained": [{
            "resourceType": "Medication",
            "id": "product",
            "code": code,
            "batch": { "lotNumber": a.lot, "expirationDate": a.expiry.to_string() },
        }],
        "status": "completed",
        "medicationReference": { "reference": "#product", "display": a.product },
        "subject": patient_ref(r.patient_id),
        "context": reference(Kind::Encounter, r.session_id),
        "effectiveDateTime": instant_of(rec.at),
        "dosage": {
            "route": { "coding": [route] },
            "dose": { "value": a.dose_mg, "unit": "mg", "system": UCUM, "code": "mg" },
        },
    })]
}
