//! Consent: a signed (portal) or recorded (paper) consent document, active until revoked.

use kapstone_store::fhir::ConsentRow;
use serde_json::{Value, json};

use super::{instant, patient_ref};
use crate::content;

pub fn consent(r: &ConsentRow) -> Value {
    let title = content::consent(&r.document_id).map_or_else(|| r.document_id.clone(), |d| d.title.clone());
    let mut period = json!({ "start": instant(r.signed_at) });
    if let Some(end) = r.revoked_at {
        period["end"] = json!(instant(end));
    }
    json!({
        "resourceType": "Consent",
        "id": r.id.to_string(),
        "status": if r.revoked_at.is_some() { "inactive" } else { "active" },
        "scope": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "treatment",
            "display": "Treatment",
        }] },
        "category": [{ "text": title }],
        "patient": patient_ref(r.patient_id),
        "dateTime": instant(r.signed_at),
        "policy": [{ "uri": format!("urn:kapstone:consent:{}:{}", r.document_id, r.document_version) }],
        "provision": { "type": "permit", "period": period },
        // How it was given (portal signature or paper form) and the signed text's SHA-256.
        "sourceAttachment": {
            "title": format!("{title} (v{}, {}; sha256 {})", r.document_version, r.method, r.document_sha256),
        },
    })
}
