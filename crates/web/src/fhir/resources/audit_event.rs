//! AuditEvent (admins only): the audit log's rows. The action is the log's own code
//! (`patient.read`, ...), in a Kapstone code system; ids only, as the log holds no content.

use kapstone_store::fhir::AuditRow;
use serde_json::{Value, json};

use super::instant;

pub fn audit_event(r: &AuditRow) -> Value {
    let outcome = match r.outcome.as_str() {
        "success" => "0",
        "failure" => "4",
        _ => "8",
    };
    let mut agent = json!({ "requestor": true });
    match r.actor_user_id.as_deref() {
        Some(user) => {
            agent["who"] = json!({ "identifier": { "system": "urn:kapstone:user", "value": user } });
            if let Some(role) = r.actor_role.as_deref().filter(|s| !s.is_empty()) {
                agent["who"]["display"] = json!(role);
            }
        }
        None => agent["who"] = json!({ "display": "Kapstone (system)" }),
    }
    if let Some(ip) = r.source_ip.as_deref() {
        agent["network"] = json!({ "address": ip, "type": "2" });
    }
    let mut entity = Vec::new();
    if let Some(p) = r.patient_id.as_deref() {
        entity.push(json!({ "what": { "reference": format!("Patient/{p}") } }));
    }
    if let Some(id) = r.entity_id.as_deref() {
        entity.push(json!({ "what": { "identifier": { "system": "urn:kapstone:entity", "value": id } }, "name": r.entity_type }));
    }
    let mut v = json!({
        "resourceType": "AuditEvent",
        "id": r.seq.to_string(),
        "type": { "system": "urn:kapstone:audit-action", "code": r.action },
        "recorded": instant(r.at),
        "outcome": outcome,
        "outcomeDesc": r.outcome,
        "agent": [agent],
        "source": { "observer": { "display": "Kapstone" } },
    });
    if !entity.is_empty() {
        v["entity"] = Value::Array(entity);
    }
    v
}
