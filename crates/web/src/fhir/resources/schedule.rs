//! Appointment and Encounter (a dosing session).

use kapstone_store::fhir::{AppointmentRow, SessionRow};
use serde_json::{Value, json};

use super::{Kind, instant, patient_ref, reference};

pub fn appointment_status(stored: &str) -> &'static str {
    match stored {
        "booked" => "booked",
        "no_show" => "noshow",
        "completed" => "fulfilled",
        // A rescheduled appointment is replaced by a new one (`rescheduled_from`).
        "cancelled" | "rescheduled" => "cancelled",
        _ => "proposed",
    }
}

pub fn appointment(r: &AppointmentRow) -> Value {
    json!({
        "resourceType": "Appointment",
        "id": r.id.to_string(),
        "status": appointment_status(&r.status),
        "appointmentType": { "text": r.type_code },
        "start": instant(r.start_at),
        "end": instant(r.end_at),
        "created": instant(r.created_at),
        "participant": [
            { "actor": patient_ref(r.patient_id), "status": "accepted" },
            { "actor": reference(Kind::Location, r.location_id), "status": "accepted" },
        ],
    })
}

fn encounter_status(r: &SessionRow) -> &'static str {
    match r.state.as_str() {
        "scheduled" => "planned",
        "checked_in" | "cleared_for_dosing" | "held" => "arrived",
        "dosing" | "monitoring" | "recovery" | "ready_for_discharge" => "in-progress",
        "discharged" => "finished",
        // Aborted after the dose started: the encounter happened; before: it did not.
        "aborted" if r.dose_started_at.is_some() => "finished",
        "aborted" => "cancelled",
        _ => "unknown",
    }
}

/// A dosing session: ambulatory, at its location, for its appointment.
pub fn encounter(r: &SessionRow) -> Value {
    let status = encounter_status(r);
    let mut period = json!({ "start": instant(r.created_at) });
    if matches!(status, "finished" | "cancelled") {
        period["end"] = json!(instant(r.updated_at));
    }
    json!({
        "resourceType": "Encounter",
        "id": r.id.to_string(),
        "status": status,
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory" },
        "type": [{ "text": "ketamine dosing session" }],
        "subject": patient_ref(r.patient_id),
        "appointment": [reference(Kind::Appointment, r.appointment_id)],
        "period": period,
        "location": [{ "location": reference(Kind::Location, r.location_id) }],
    })
}
