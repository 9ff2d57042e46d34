//! Condition (ICD-10-CM diagnoses), AllergyIntolerance and MedicationStatement: the lists of the
//! patient's consultation. Ids are `{consultation id}.{position}`, so a read names the version.

use kapstone_domain::consultation::{AllergySeverity, ConsultationInput};
use kapstone_store::fhir::ConsultationRow;
use serde_json::{Value, json};

use super::{instant, patient_ref};
use crate::content;

/// The consultation's stored input; a row that does not parse yields no resources (logged).
pub fn input(r: &ConsultationRow) -> Option<ConsultationInput> {
    match serde_json::from_str(&r.body) {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::error!(consultation = %r.id, error = %e, "stored consultation does not parse");
            None
        }
    }
}

pub fn conditions(r: &ConsultationRow) -> Vec<Value> {
    let Some(input) = input(r) else { return Vec::new() };
    let table = content::diagnosis_table().ok();
    input
        .diagnoses
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let description =
                table.and_then(|t| t.codes.iter().find(|c| c.code == d.code)).map(|c| c.description.clone());
            let mut coding = json!({
                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                "version": r.diagnosis_table_version,
                "code": d.code,
            });
            if let Some(text) = &description {
                coding["display"] = json!(text);
            }
            json!({
                "resourceType": "Condition",
                "id": format!("{}.{i}", r.id),
                "category": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "encounter-diagnosis",
                }] }],
                "code": { "coding": [coding], "text": description.unwrap_or_else(|| d.code.clone()) },
                "subject": patient_ref(r.patient_id),
                "recordedDate": instant(r.recorded_at),
            })
        })
        .collect()
}

pub fn allergies(r: &ConsultationRow) -> Vec<Value> {
    let Some(input) = input(r) else { return Vec::new() };
    input
        .allergies
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut v = json!({
                "resourceType": "AllergyIntolerance",
                "id": format!("{}.{i}", r.id),
                "clinicalStatus": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }] },
                "code": { "text": a.substance },
                "patient": patient_ref(r.patient_id),
                "recordedDate": instant(r.recorded_at),
            });
            if let Some(reaction) = a.reaction.as_deref().filter(|s| !s.trim().is_empty()) {
                let severity = match a.severity {
                    AllergySeverity::Mild => "mild",
                    AllergySeverity::Moderate => "moderate",
                    AllergySeverity::Severe => "severe",
                };
                v["reaction"] = json!([{ "manifestation": [{ "text": reaction }], "severity": severity }]);
            }
            v
        })
        .collect()
}

pub fn medication_statements(r: &ConsultationRow) -> Vec<Value> {
    let Some(input) = input(r) else { return Vec::new() };
    input
        .medications
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut v = json!({
                "resourceType": "MedicationStatement",
                "id": format!("{}.{i}", r.id),
                "status": "active",
                "medicationCodeableConcept": { "text": m.name },
                "subject": patient_ref(r.patient_id),
                "dateAsserted": instant(r.recorded_at),
            });
            if let Some(mg) = m.daily_dose_mg {
                v["dosage"] = json!([{ "text": format!("{mg} mg per day in total") }]);
            }
            v
        })
        .collect()
}
