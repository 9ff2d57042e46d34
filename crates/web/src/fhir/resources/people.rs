//! Patient, Practitioner (staff accounts) and Location.

use kapstone_store::fhir::{LocationRow, PatientRow, StaffRow};
use serde_json::{Value, json};

/// The demographics the chart holds. The MRN is the identifier; the emergency contact stays out
/// (not part of the Patient's own demographics).
pub fn patient(r: &PatientRow) -> Value {
    let gender = match r.sex_at_birth.as_str() {
        "female" => "female",
        "male" => "male",
        "other" => "other",
        _ => "unknown",
    };
    let mut p = json!({
        "resourceType": "Patient",
        "id": r.id.to_string(),
        "identifier": [{ "use": "usual", "system": "urn:kapstone:mrn", "value": r.mrn }],
        "active": true,
        "name": [{ "use": "official", "family": r.family_name, "given": [r.given_name] }],
        "gender": gender,
        "birthDate": r.birth_date.to_string(),
    });
    let mut telecom = Vec::new();
    if let Some(phone) = r.phone.as_deref().filter(|s| !s.trim().is_empty()) {
        telecom.push(json!({ "system": "phone", "value": phone }));
    }
    if let Some(email) = r.email.as_deref().filter(|s| !s.trim().is_empty()) {
        telecom.push(json!({ "system": "email", "value": email }));
    }
    if !telecom.is_empty() {
        p["telecom"] = Value::Array(telecom);
    }
    if let Some(a) = r.address.as_deref().filter(|s| !s.trim().is_empty()) {
        p["address"] = json!([{ "text": a }]);
    }
    p
}

/// A staff account as a Practitioner: name and work email; the role is the account's role in
/// Kapstone, not a licence (sent as text).
pub fn practitioner(r: &StaffRow) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": r.id.to_string(),
        "active": r.active,
        "name": [{ "text": r.display_name }],
        "telecom": [{ "system": "email", "value": r.email, "use": "work" }],
        "qualification": [{ "code": { "text": r.role } }],
    })
}

pub fn location(r: &LocationRow) -> Value {
    json!({
        "resourceType": "Location",
        "id": r.id.to_string(),
        "status": "active",
        "name": r.name,
        "description": format!("time zone {}", r.time_zone),
        "mode": "instance",
    })
}
