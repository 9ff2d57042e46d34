//! The preparation of dosing sessions: checklists for staff and patient, the ride home, the
//! intention, medication instructions, acknowledgement of the pre-session instructions, and the
//! questionnaires assigned when a dosing session is booked.

use jiff::Timestamp;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::decision::Route;
use kapstone_domain::instruments::Instrument;
use kapstone_domain::preparation::{self, Item, PrepFacts};
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::{FieldError, PatientId, Role};
use kapstone_store::audit;
use kapstone_store::scheduling::{self as store, AppointmentRow, PrepChange};
use uuid::Uuid;

use super::scheduling::{to_jiff, types};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// A dosing appointment with its route and checklist.
pub struct Prepared {
    pub appointment: AppointmentRow,
    pub route: Route,
    pub items: Vec<Item>,
    pub flag: Option<&'static str>,
    pub intention: Option<String>,
    /// (name, phone, relationship) of the ride home as recorded, to prefill the portal's form.
    pub escort: Option<(String, String, String)>,
}

/// The checklists of the dosing appointments among `rows` (others are skipped).
pub async fn checklists(
    state: &AppState,
    user: &CurrentUser,
    rows: &[AppointmentRow],
) -> Result<Vec<Prepared>, AppError> {
    let types = types(state, user).await?;
    let dosing: Vec<(&AppointmentRow, Route)> = rows
        .iter()
        .filter(|a| a.status == "booked")
        .filter_map(|a| {
            let t = &types.iter().find(|(id, _, _)| *id == a.type_id)?.1;
            (t.kind == AppointmentKind::Dosing).then_some((a, t.route?))
        })
        .collect();
    let ids: Vec<Uuid> = dosing.iter().map(|(a, _)| a.id).collect();
    let preps = store::preparation(&state.db, &ids).await?;
    let created = store::created_at(&state.db, &ids).await?;
    let patients: Vec<Uuid> = dosing.iter().map(|(a, _)| a.patient_id).collect();
    // The screens count "since last visit" (KAP-SPEC 7.10): from the later of the booking and
    // the patient's previous dosing session, so one answer does not tick every session of a
    // course booked at once.
    let mut previous: Vec<(Uuid, kapstone_domain::UtcTs)> = Vec::new();
    let mut seen: Vec<Uuid> = Vec::new();
    for (a, _) in &dosing {
        if seen.contains(&a.patient_id) {
            continue;
        }
        seen.push(a.patient_id);
        let all = store::appointments_of_patient(&state.db, PatientId::from_uuid(a.patient_id)).await?;
        let starts: Vec<kapstone_domain::UtcTs> = all
            .iter()
            .filter(|x| matches!(x.status.as_str(), "booked" | "completed"))
            .filter(|x| types.iter().any(|(id, t, _)| *id == x.type_id && t.kind == AppointmentKind::Dosing))
            .map(|x| x.start_at.0)
            .collect();
        for (d, _) in dosing.iter().filter(|(d, _)| d.patient_id == a.patient_id) {
            if let Some(prev) = starts.iter().filter(|s| **s < d.start_at.0).max() {
                previous.push((d.id, *prev));
            }
        }
    }
    let earliest = created.iter().map(|(_, t)| t.0).min().unwrap_or_else(kapstone_domain::UtcTs::now);
    let responses = store::responses_since(&state.db, &patients, earliest).await?;
    let now = Timestamp::now();
    Ok(dosing
        .into_iter()
        .map(|(a, route)| {
            let p = preps.iter().find(|p| p.appointment_id == a.id).cloned().unwrap_or_default();
            let booked_at = created.iter().find(|(id, _)| *id == a.id).map(|(_, t)| t.0);
            let prev = previous.iter().find(|(id, _)| *id == a.id).map(|(_, t)| *t);
            let from = match (booked_at, prev) {
                (Some(b), Some(p)) => Some(if p > b { p } else { b }),
                (b, p) => b.or(p),
            };
            let answered = |instrument: &str| {
                responses.iter().any(|(pid, i, at)| {
                    *pid == a.patient_id && i == instrument && from.is_some_and(|f| at.0 >= f) && at.0 < a.start_at.0
                })
            };
            let facts = PrepFacts {
                escort_name: p.escort_name.clone(),
                escort_phone: p.escort_phone.clone(),
                escort_relationship: p.escort_relationship.clone(),
                escort_confirmed: p.escort_confirmed_at.is_some(),
                intention_written: p.intention.is_some(),
                medication_instructions: p.medication_instructions.clone(),
                instructions_acknowledged: p.instructions_ack_at.is_some(),
                phq9_done: answered("phq9"),
                cssrs_done: answered("cssrs_screener"),
            };
            let items = preparation::checklist(route, &facts);
            let flag = preparation::flag(to_jiff(a.start_at.0), now, &items);
            let escort = match (&p.escort_name, &p.escort_phone) {
                (Some(n), Some(ph)) => Some((n.clone(), ph.clone(), p.escort_relationship.clone().unwrap_or_default())),
                _ => None,
            };
            Prepared { appointment: a.clone(), route, items, flag, intention: p.intention, escort }
        })
        .collect())
}

/// The appointment, checked to belong to this clinic and, for a patient account, to them.
async fn own_appointment(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<AppointmentRow, AppError> {
    let a = store::appointment(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    if user.role == Role::Patient && user.patient != Some(PatientId::from_uuid(a.patient_id)) {
        return Err(AppError::NotFound);
    }
    if a.status != "booked" {
        return Err(AppError::Conflict { field: "id", message: format!("this appointment is {}", a.status) });
    }
    Ok(a)
}

async fn record(
    state: &AppState,
    user: &CurrentUser,
    a: &AppointmentRow,
    change: PrepChange<'_>,
    what: &str,
) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    store::change_preparation(&mut tx, a.id, &change).await?;
    let mut e = user.event(AuditAction::AppointmentChanged, "appointment_preparation", Outcome::Success);
    e.entity_id = Some(a.id.to_string());
    e.patient_id = Some(PatientId::from_uuid(a.patient_id));
    e.reason = Some(what.to_owned());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// The ride home. Entered by the patient it counts as confirmed; entered by staff (on the
/// phone) it still waits for the patient's confirmation in the portal.
pub async fn set_escort(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    name: &str,
    phone: &str,
    relationship: &str,
) -> Result<(), AppError> {
    let a = own_appointment(state, user, id).await?;
    let name = kapstone_domain::PersonName::parse("escort_name", name)?;
    let phone = kapstone_domain::patient::Phone::parse("escort_phone", phone)?;
    let relationship = kapstone_domain::patient::optional_text("escort_relationship", Some(relationship), 60)?;
    let confirmed = user.role == Role::Patient;
    let change = PrepChange::Escort {
        name: name.as_str(),
        phone: phone.as_str(),
        relationship: relationship.as_deref(),
        confirmed,
    };
    record(state, user, &a, change, if confirmed { "ride confirmed by patient" } else { "ride recorded by staff" })
        .await
}

/// The patient's intention for the session (portal).
pub async fn set_intention(state: &AppState, user: &CurrentUser, id: Uuid, text: &str) -> Result<(), AppError> {
    let a = own_appointment(state, user, id).await?;
    let text = kapstone_domain::patient::optional_text("intention", Some(text), 2000)?
        .ok_or_else(|| FieldError::new("intention", "write your intention for the session"))?;
    record(state, user, &a, PrepChange::Intention(&text), "intention written").await
}

/// The prescriber's medication instructions (e.g. hold a benzodiazepine the evening before).
pub async fn set_medication_instructions(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    text: &str,
) -> Result<(), AppError> {
    let a = own_appointment(state, user, id).await?;
    let text = kapstone_domain::patient::optional_text("medication_instructions", Some(text), 2000)?
        .ok_or_else(|| FieldError::new("medication_instructions", "write the instructions (or \"no changes\")"))?;
    record(state, user, &a, PrepChange::MedicationInstructions { text: &text, by: user.id }, "medication instructions")
        .await
}

/// The patient read the pre-session instructions (portal).
pub async fn acknowledge(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<(), AppError> {
    let a = own_appointment(state, user, id).await?;
    record(state, user, &a, PrepChange::InstructionsAcknowledged, "instructions acknowledged").await
}

/// When a dosing session is booked, in the booking's transaction (so that a booking is never
/// stored without them): the pre-session PHQ-9 and C-SSRS (since last visit) go to the portal,
/// unless they are already waiting there (KAP-SPEC 7.10).
pub async fn assign_pre_session_questionnaires(
    tx: &mut kapstone_store::Tx,
    user: &CurrentUser,
    patient: PatientId,
) -> Result<(), AppError> {
    let open = kapstone_store::questionnaires::open_assignments_in(tx, patient).await?;
    for instrument in [Instrument::Phq9, Instrument::CssrsScreener] {
        if !open.iter().any(|o| o.instrument == instrument.as_str()) {
            super::questionnaires::assign_in(tx, user, patient, instrument).await?;
        }
    }
    Ok(())
}

/// The patient asks (portal) to reschedule or cancel; the front desk sees it on the home page.
pub async fn request_change(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    kind: &str,
    note: &str,
) -> Result<(), AppError> {
    let a = own_appointment(state, user, id).await?;
    if !matches!(kind, "reschedule" | "cancel") {
        return Err(FieldError::new("kind", "reschedule or cancel").into());
    }
    let note = kapstone_domain::patient::optional_text("note", Some(note), 500)?;
    let mut tx = state.db.begin().await?;
    let rid =
        store::insert_request(&mut tx, user.clinic, a.id, PatientId::from_uuid(a.patient_id), kind, note.as_deref())
            .await?;
    let mut e = user.event(AuditAction::AppointmentChanged, "appointment_request", Outcome::Success);
    e.entity_id = Some(rid.to_string());
    e.patient_id = Some(PatientId::from_uuid(a.patient_id));
    e.reason = Some(format!("patient asks to {kind}"));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}
