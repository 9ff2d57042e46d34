//! Patients' rights over their record (KAP-SPEC 10, 45 CFR 164.524/164.526; TV-HIP-1..3): a
//! patient in the portal, or staff on their behalf, asks for access to the record or for an
//! amendment; the request is tracked against its deadline (the domain's
//! [`kapstone_domain::records_access::Deadline`]: 30 or 60 days, one extension with written
//! reasons); access is fulfilled by exporting the designated record set (everything but
//! psychotherapy notes: [`record_set`]) as a printable document and as JSON; an amendment is
//! accepted or denied with its basis, and the patient's statement of disagreement and the
//! clinic's rebuttal are linked on the request. Audit events carry ids and kinds, never text.

use jiff::civil::Date;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::records_access::{
    AccessOutcome, AccessRequest, AmendmentDecision, AmendmentRequest, Deadline, Extension, RecordItem, Refusal,
    RequestKind, Statement, Status, record_set,
};
use kapstone_domain::{ClinicId, FieldError, PatientId};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use kapstone_store::record_requests::{self as store, NewRequest, RequestRow};
use kapstone_store::{audit, patients};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// The clinic's calendar day now (deadlines count the clinic's days).
pub async fn today(state: &AppState, clinic: ClinicId) -> Result<Date, AppError> {
    let zone = kapstone_store::clinics::time_zone(&state.db, clinic).await?.unwrap_or_else(|| "UTC".to_owned());
    let tz = super::scheduling::time_zone(&zone)?;
    Ok(jiff::Timestamp::now().to_zoned(tz).date())
}

fn corrupt(what: &str) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored record request is invalid: {what}"))
}

fn date(raw: &Option<String>) -> Result<Option<Date>, AppError> {
    raw.as_deref().map(|d| d.parse::<Date>().map_err(|_| corrupt("date"))).transpose()
}

fn refusal(r: Refusal) -> AppError {
    match r {
        Refusal::Invalid(e) => AppError::Invalid(e),
        Refusal::BeforeReceipt => AppError::Invalid(FieldError::new("on", "a date before the request was received")),
        other => AppError::Refused { code: "state", field: None, message: other.to_string() },
    }
}

/// A request as the domain sees it.
enum Domain {
    Access(AccessRequest),
    Amendment(AmendmentRequest),
}

impl Domain {
    fn deadline(&self) -> &Deadline {
        match self {
            Domain::Access(a) => &a.deadline,
            Domain::Amendment(a) => &a.deadline,
        }
    }

    fn deadline_mut(&mut self) -> &mut Deadline {
        match self {
            Domain::Access(a) => &mut a.deadline,
            Domain::Amendment(a) => &mut a.deadline,
        }
    }
}

fn to_domain(r: &RequestRow) -> Result<Domain, AppError> {
    let received: Date = r.received_on.parse().map_err(|_| corrupt("received_on"))?;
    let kind = match r.kind.as_str() {
        "access" => RequestKind::Access,
        "amendment" => RequestKind::Amendment,
        _ => return Err(corrupt("kind")),
    };
    let mut deadline = Deadline::new(kind, received);
    if let (Some(on), Some(until)) = (date(&r.extended_on)?, date(&r.extended_until)?) {
        deadline.extension =
            Some(Extension { given_on: on, reason: r.extension_reason.clone().unwrap_or_default(), until });
    }
    deadline.answered_on = date(&r.answered_on)?;
    let on = deadline.answered_on;
    Ok(match kind {
        RequestKind::Access => Domain::Access(AccessRequest {
            deadline,
            outcome: match (r.outcome.as_deref(), on) {
                (Some("provided"), Some(on)) => Some(AccessOutcome::Provided { on }),
                (Some("denied"), Some(on)) => {
                    Some(AccessOutcome::Denied { on, basis: r.basis.clone().unwrap_or_default() })
                }
                _ => None,
            },
        }),
        RequestKind::Amendment => Domain::Amendment(AmendmentRequest {
            deadline,
            requested: r.requested.clone().unwrap_or_default(),
            decision: match (r.outcome.as_deref(), on) {
                (Some("accepted"), Some(on)) => Some(AmendmentDecision::Accepted {
                    on,
                    records: serde_json::from_str(r.records.as_deref().unwrap_or("[]"))
                        .map_err(|_| corrupt("records"))?,
                }),
                (Some("denied"), Some(on)) => {
                    Some(AmendmentDecision::Denied { on, basis: r.basis.clone().unwrap_or_default() })
                }
                _ => None,
            },
            disagreement: match (date(&r.disagreement_on)?, &r.disagreement) {
                (Some(on), Some(text)) => Some(Statement { on, text: text.clone() }),
                _ => None,
            },
            rebuttal: match (date(&r.rebuttal_on)?, &r.rebuttal) {
                (Some(on), Some(text)) => Some(Statement { on, text: text.clone() }),
                _ => None,
            },
        }),
    })
}

/// Writes the domain's state back onto the row.
fn apply(row: &mut RequestRow, d: &Domain) {
    let dl = d.deadline();
    row.extended_on = dl.extension.as_ref().map(|e| e.given_on.to_string());
    row.extension_reason = dl.extension.as_ref().map(|e| e.reason.clone());
    row.extended_until = dl.extension.as_ref().map(|e| e.until.to_string());
    row.answered_on = dl.answered_on.map(|d| d.to_string());
    match d {
        Domain::Access(a) => match &a.outcome {
            Some(AccessOutcome::Provided { .. }) => row.outcome = Some("provided".into()),
            Some(AccessOutcome::Denied { basis, .. }) => {
                row.outcome = Some("denied".into());
                row.basis = Some(basis.clone());
            }
            None => {}
        },
        Domain::Amendment(a) => {
            match &a.decision {
                Some(AmendmentDecision::Accepted { records, .. }) => {
                    row.outcome = Some("accepted".into());
                    row.records = serde_json::to_string(records).ok();
                }
                Some(AmendmentDecision::Denied { basis, .. }) => {
                    row.outcome = Some("denied".into());
                    row.basis = Some(basis.clone());
                }
                None => {}
            }
            row.disagreement_on = a.disagreement.as_ref().map(|s| s.on.to_string());
            row.disagreement = a.disagreement.as_ref().map(|s| s.text.clone());
            row.rebuttal_on = a.rebuttal.as_ref().map(|s| s.on.to_string());
            row.rebuttal = a.rebuttal.as_ref().map(|s| s.text.clone());
        }
    }
}

/// A request with its deadline and status on the clinic's today, in the API's shape.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RequestView {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub kind: String,
    pub received_on: String,
    pub via: String,
    pub requested: Option<String>,
    pub due: Date,
    pub first_due: Date,
    /// Where it stands (for the pages; the API writes [`Standing`], which leaves `due` to the field
    /// above rather than writing it twice).
    #[serde(skip)]
    pub status: Status,
    #[serde(flatten)]
    pub standing: Standing,
    pub extension: Option<Extension>,
    /// provided | denied | accepted
    pub outcome: Option<String>,
    pub basis: Option<String>,
    pub records: Vec<Uuid>,
    pub disagreement: Option<Statement>,
    pub rebuttal: Option<Statement>,
    /// A denied amendment travels with later disclosures of the record (164.526(d)).
    pub travels_with_disclosures: bool,
}

/// Where a request stands, as the API writes it beside the request's `due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Standing {
    Open {
        extended: bool,
    },
    /// Not answered and past its deadline.
    Overdue {},
    Answered {
        on: Date,
        late: bool,
    },
}

impl From<Status> for Standing {
    fn from(s: Status) -> Self {
        match s {
            Status::Open { extended, .. } => Standing::Open { extended },
            Status::Overdue { .. } => Standing::Overdue {},
            Status::Answered { on, late } => Standing::Answered { on, late },
        }
    }
}

fn view(r: &RequestRow, today: Date) -> Result<RequestView, AppError> {
    let d = to_domain(r)?;
    let dl = d.deadline();
    let (records, disagreement, rebuttal, travels) = match &d {
        Domain::Amendment(a) => (
            match &a.decision {
                Some(AmendmentDecision::Accepted { records, .. }) => records.clone(),
                _ => Vec::new(),
            },
            a.disagreement.clone(),
            a.rebuttal.clone(),
            a.travels_with_disclosures(),
        ),
        Domain::Access(_) => (Vec::new(), None, None, false),
    };
    Ok(RequestView {
        id: r.id,
        patient_id: r.patient_id,
        kind: r.kind.clone(),
        received_on: r.received_on.clone(),
        via: r.via.clone(),
        requested: r.requested.clone(),
        due: dl.due(),
        first_due: dl.first_due(),
        status: dl.status(today),
        standing: dl.status(today).into(),
        extension: dl.extension.clone(),
        outcome: r.outcome.clone(),
        basis: r.basis.clone(),
        records,
        disagreement,
        rebuttal,
        travels_with_disclosures: travels,
    })
}

/// What a new request says.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestInput {
    /// `access` or `amendment`.
    pub kind: String,
    /// For an amendment: what to change and why, in the patient's words.
    #[serde(default)]
    pub requested: Option<String>,
    /// Staff only: the day the request was received (YYYY-MM-DD, not in the future); today when
    /// absent.
    #[serde(default)]
    pub received_on: Option<String>,
}

/// Records a request: from the portal (the patient's own, received today) or by staff on the
/// patient's behalf.
pub async fn create(
    state: &AppState,
    by: &CurrentUser,
    patient: PatientId,
    input: &NewRequestInput,
) -> Result<RequestView, AppError> {
    let today = today(state, by.clinic).await?;
    let staff = by.role.is_staff();
    let received = match input.received_on.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) if staff => {
            let d: Date = raw.parse().map_err(|_| FieldError::new("received_on", "give the date as YYYY-MM-DD"))?;
            if d > today {
                return Err(FieldError::new("received_on", "a date in the future").into());
            }
            d
        }
        Some(_) => return Err(FieldError::new("received_on", "set by the clinic").into()),
        None => today,
    };
    let (kind, requested) = match input.kind.trim() {
        "access" => (RequestKind::Access, None),
        "amendment" => {
            let a = AmendmentRequest::received(received, input.requested.as_deref().unwrap_or_default())
                .map_err(refusal)?;
            (RequestKind::Amendment, Some(a.requested))
        }
        _ => return Err(FieldError::new("kind", "access or amendment").into()),
    };
    if patients::get(&state.db, by.clinic, patient).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let kind_str = match kind {
        RequestKind::Access => "access",
        RequestKind::Amendment => "amendment",
    };
    let mut tx = state.db.begin().await?;
    let id = store::insert(
        &mut tx,
        &NewRequest {
            clinic: by.clinic,
            patient,
            kind: kind_str,
            received_on: &received.to_string(),
            by: by.id,
            via: if staff { "staff" } else { "portal" },
            requested: requested.as_deref(),
        },
    )
    .await?;
    let mut e = by.event(AuditAction::RecordRequestReceived, "record_request", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(kind_str.to_owned());
    audit::append(&mut tx, &e).await?;
    // Read back before the commit: the view is stored with the request (issue 9).
    let row = store::one_for_update(&mut tx, by.clinic, id).await?.ok_or(AppError::NotFound)?;
    let out = view(&row, today)?;
    tx.commit_answering(&out).await?;
    Ok(out)
}

async fn audit_read(state: &AppState, by: &CurrentUser, rows: &[RequestRow]) -> Result<(), AppError> {
    for r in rows {
        let mut e = by.event(AuditAction::RecordRequestsRead, "record_request", Outcome::Success);
        e.entity_id = Some(r.id.to_string());
        e.patient_id = Some(PatientId::from_uuid(r.patient_id));
        state.read_audit.record(e).await?;
    }
    Ok(())
}

/// A patient's own requests (the id comes from the session, never from the request).
pub async fn own(state: &AppState, me: &CurrentUser) -> Result<Vec<RequestView>, AppError> {
    let Some(patient) = me.patient else { return Err(AppError::Forbidden) };
    of_patient(state, me, patient).await
}

/// A patient's requests, newest first (staff, or the patient themself through [`own`]).
pub async fn of_patient(state: &AppState, by: &CurrentUser, patient: PatientId) -> Result<Vec<RequestView>, AppError> {
    let today = today(state, by.clinic).await?;
    let rows = store::of_patient(&state.db, by.clinic, patient).await?;
    audit_read(state, by, &rows).await?;
    rows.iter().map(|r| view(r, today)).collect()
}

/// A page of `limit` of a patient's requests (`filter.patient`), newest first after `after` (the
/// API's lists, staff and portal; see `api::page`): the requests, and the key to continue after.
pub async fn of_patient_page(
    state: &AppState,
    by: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<(Vec<RequestView>, Option<TimeKey>), AppError> {
    let after = TimeKey::newest_first(after);
    let rows = store::of_patient_page(&state.db, &Page { clinic: by.clinic, filter, after, limit: limit + 1 }).await?;
    viewed_page(state, by, rows, limit).await
}

/// A page read with one row more than `limit` (which only says a next page follows): the rows
/// audited as read and viewed on the clinic's today, and the key to continue after.
async fn viewed_page(
    state: &AppState,
    by: &CurrentUser,
    mut rows: Vec<RequestRow>,
    limit: i64,
) -> Result<(Vec<RequestView>, Option<TimeKey>), AppError> {
    let today = today(state, by.clinic).await?;
    let next = keyset::cut(&mut rows, limit, |r| TimeKey::new(r.created_at, r.id));
    audit_read(state, by, &rows).await?;
    Ok((rows.iter().map(|r| view(r, today)).collect::<Result<_, _>>()?, next))
}

/// The clinic's open requests, with their deadlines, the most urgent first (staff).
pub async fn open(state: &AppState, by: &CurrentUser) -> Result<Vec<RequestView>, AppError> {
    let today = today(state, by.clinic).await?;
    let rows = store::open(&state.db, by.clinic).await?;
    audit_read(state, by, &rows).await?;
    let mut out: Vec<RequestView> = rows.iter().map(|r| view(r, today)).collect::<Result<_, _>>()?;
    out.sort_by_key(|v| (v.outcome.is_some(), v.due));
    Ok(out)
}

/// A page of `limit` of the requests [`open`] lists, in the order they were recorded (the API's
/// list; see `api::page`): the requests, and the key to continue after when more follow.
pub async fn open_page(
    state: &AppState,
    by: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<(Vec<RequestView>, Option<TimeKey>), AppError> {
    let after = TimeKey::oldest_first(after);
    let rows = store::open_page(&state.db, &Page { clinic: by.clinic, filter, after, limit: limit + 1 }).await?;
    viewed_page(state, by, rows, limit).await
}

/// One request of the clinic (staff).
pub async fn one(state: &AppState, by: &CurrentUser, id: Uuid) -> Result<RequestView, AppError> {
    let today = today(state, by.clinic).await?;
    let row = store::one(&state.db, by.clinic, id).await?.ok_or(AppError::NotFound)?;
    audit_read(state, by, std::slice::from_ref(&row)).await?;
    view(&row, today)
}

/// A step on a request.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    /// `extend`, `provide`, `deny`, `accept`, `rebut` (staff) or `disagree` (the patient).
    pub step: String,
    /// The written reason of an extension.
    #[serde(default)]
    pub reason: Option<String>,
    /// The written basis of a denial.
    #[serde(default)]
    pub basis: Option<String>,
    /// The records an accepted amendment is appended to.
    #[serde(default)]
    pub records: Option<Vec<String>>,
    /// The statement of disagreement, or the rebuttal.
    #[serde(default)]
    pub text: Option<String>,
}

/// Takes a step on a request. Staff take every step but `disagree`; a patient only `disagree`,
/// and only on their own request (anything else of theirs is "not found").
pub async fn step(state: &AppState, by: &CurrentUser, id: Uuid, input: &StepInput) -> Result<RequestView, AppError> {
    let today = today(state, by.clinic).await?;
    let staff = by.role.is_staff();
    let step = input.step.trim();
    let allowed = if staff { step != "disagree" } else { step == "disagree" };
    let mut tx = state.db.begin().await?;
    let mut row = store::one_for_update(&mut tx, by.clinic, id).await?.ok_or(AppError::NotFound)?;
    if !staff && by.patient.map(|p| p.as_uuid()) != Some(row.patient_id) {
        return Err(AppError::NotFound);
    }
    if !allowed {
        return Err(
            FieldError::new("step", if staff { "extend, provide, deny, accept or rebut" } else { "disagree" }).into()
        );
    }
    let mut d = to_domain(&row)?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match (step, &mut d) {
        ("extend", _) => {
            d.deadline_mut().extend(today, &text(&input.reason)).map_err(refusal)?;
        }
        ("provide", Domain::Access(a)) => a.provide(today).map_err(refusal)?,
        ("deny", Domain::Access(a)) => a.deny(today, &text(&input.basis)).map_err(refusal)?,
        ("deny", Domain::Amendment(a)) => a.deny(today, &text(&input.basis)).map_err(refusal)?,
        ("accept", Domain::Amendment(a)) => {
            let records = input
                .records
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|r| r.trim().parse::<Uuid>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| FieldError::new("records", "give the ids of the records the amendment is appended to"))?;
            a.accept(today, records).map_err(refusal)?;
        }
        ("rebut", Domain::Amendment(a)) => a.rebut(today, &text(&input.text)).map_err(refusal)?,
        ("disagree", Domain::Amendment(a)) => a.disagree(today, &text(&input.text)).map_err(refusal)?,
        ("provide" | "accept" | "rebut" | "disagree", _) => {
            return Err(FieldError::new("step", format!("not a step of a {} request", row.kind)).into());
        }
        _ => return Err(FieldError::new("step", "extend, provide, deny, accept, rebut or disagree").into()),
    }
    apply(&mut row, &d);
    if matches!(step, "provide" | "deny" | "accept") {
        row.answered_by = Some(by.id.as_uuid());
    }
    if step == "rebut" {
        row.rebuttal_by = Some(by.id.as_uuid());
    }
    store::save(&mut tx, by.clinic, &row).await?;
    let mut e = by.event(AuditAction::RecordRequestStep, "record_request", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(row.patient_id));
    e.reason = Some(format!("{} {step}", row.kind));
    audit::append(&mut tx, &e).await?;
    let out = view(&row, today)?;
    tx.commit_answering(&out).await?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The designated record set.

/// The export of the designated record set: everything but psychotherapy notes (TV-HIP-3).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RecordExport {
    pub request_id: Uuid,
    pub patient_id: Uuid,
    pub generated_at: kapstone_domain::UtcTs,
    /// What is left out and why (the patient is told plainly).
    pub excluded: Vec<&'static str>,
    pub demographics: Value,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Section {
    pub key: &'static str,
    pub title: &'static str,
    pub items: Vec<Value>,
}

fn json_or_text(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Gathers the designated record set of a patient. Psychotherapy notes are never read here: the
/// separate store has no query by patient, and [`record_set`] is asked for every item.
async fn gather(state: &AppState, clinic: ClinicId, patient: PatientId) -> Result<(Value, Vec<Section>), AppError> {
    use kapstone_store::{dosing, eligibility, questionnaires, scheduling};
    let p = patients::get(&state.db, clinic, patient).await?.ok_or(AppError::NotFound)?;
    let demographics = json!({
        "mrn": p.mrn, "given_name": p.given_name, "family_name": p.family_name,
        "birth_date": p.birth_date.to_string(), "sex_at_birth": p.sex_at_birth,
        "gender_identity": p.gender_identity, "pronouns": p.pronouns, "phone": p.phone, "email": p.email,
        "address": p.address, "emergency_contact_name": p.emergency_contact_name,
        "emergency_contact_phone": p.emergency_contact_phone,
    });
    let mut items: Vec<(RecordItem, (&'static str, Value))> = Vec::new();
    if let Some(c) = eligibility::latest_consultation(&state.db, patient).await? {
        items.push((
            RecordItem::Consultation,
            ("consultation", json!({"id": c.id, "version": c.version, "recorded_at": c.recorded_at.0, "content": json_or_text(&c.body)})),
        ));
    }
    for d in eligibility::decisions(&state.db, patient).await? {
        items.push((
            RecordItem::EligibilityDecision,
            (
                "eligibility",
                json!({"id": d.id, "verdict": d.verdict, "routes": json_or_text(&d.routes),
                "summary": d.summary, "findings": json_or_text(&d.findings), "signed_at": d.signed_at.0,
                "amends": d.amends_id}),
            ),
        ));
    }
    for c in store::consents_of_patient(&state.db, patient).await? {
        items.push((
            RecordItem::Consent,
            (
                "consents",
                json!({"id": c.id, "document": c.document_id, "version": c.document_version,
                "signed_at": c.signed_at.0, "method": c.method, "revoked_at": c.revoked_at.map(|t| t.0)}),
            ),
        ));
    }
    for q in questionnaires::recent_responses(&state.db, patient, 10_000).await? {
        items.push((
            RecordItem::QuestionnaireScore,
            (
                "questionnaires",
                json!({"id": q.id, "instrument": q.instrument, "total": q.total,
                "severity": q.severity, "result": json_or_text(&q.result), "via": q.entered_via,
                "submitted_at": q.submitted_at.0}),
            ),
        ));
    }
    for c in scheduling::courses_of_patient(&state.db, clinic, patient).await? {
        items.push((
            RecordItem::TreatmentCourse,
            (
                "courses",
                json!({"id": c.id, "template": c.template, "first_date": c.first_date,
                "status": c.status, "options": json_or_text(&c.options), "started_at": c.started_at.0}),
            ),
        ));
    }
    for a in scheduling::appointments_of_patient(&state.db, patient).await? {
        items.push((
            RecordItem::Appointment,
            (
                "appointments",
                json!({"id": a.id, "start": a.start_at.0, "end": a.end_at.0, "status": a.status,
                "status_reason": a.status_reason, "course_id": a.course_id}),
            ),
        ));
    }
    let sessions = dosing::sessions_of_patient(&state.db, clinic, patient).await?;
    for s in &sessions {
        let events: Vec<Value> = dosing::events(&state.db, s.id)
            .await?
            .into_iter()
            .map(|e| json!({"seq": e.seq, "kind": e.kind, "at": e.recorded_at.0, "record": json_or_text(&e.payload)}))
            .collect();
        items.push((
            RecordItem::DosingRecord,
            (
                "sessions",
                json!({"id": s.id, "protocol": s.protocol_id, "protocol_version": s.protocol_version,
                "state": s.state, "opened_at": s.created_at.0, "dose_started_at": s.dose_started_at.map(|t| t.0),
                "events": events}),
            ),
        ));
    }
    let ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
    for r in dosing::rems_submissions(&state.db, &ids).await? {
        items.push((
            RecordItem::RemsForm,
            (
                "rems",
                json!({"id": r.id, "session_id": r.session_id, "form_version": r.form_version,
                "submitted_on": r.submitted_on, "confirmation": r.confirmation}),
            ),
        ));
    }
    // Integration notes go in once signed (drafts are offered to `record_set`, which leaves them
    // out), each with its amendments: the original as signed, then every correction.
    let notes = kapstone_store::integration_notes::of_patient(&state.db, clinic, patient).await?;
    let note_ids: Vec<Uuid> = notes.iter().filter(|n| n.signed_at.is_some()).map(|n| n.id).collect();
    let amendments = kapstone_store::integration_notes::amendments(&state.db, &note_ids).await?;
    for n in &notes {
        let corrections: Vec<Value> = amendments
            .iter()
            .filter(|a| a.note_id == n.id)
            .map(
                |a| json!({"id": a.id, "summary": a.summary, "plan": a.plan, "reason": a.reason, "at": a.created_at.0}),
            )
            .collect();
        items.push((
            RecordItem::IntegrationNote { signed: n.signed_at.is_some() },
            (
                "integration_notes",
                json!({"id": n.id, "session_id": n.session_id, "summary": n.summary, "plan": n.plan,
                "signed_at": n.signed_at.map(|t| t.0), "amendments": corrections}),
            ),
        ));
    }
    // Journal entries the patient shared with the care team (private ones stay in the portal).
    for j in kapstone_store::journal::shared_of_patient(&state.db, clinic, patient).await?.into_iter().rev() {
        items.push((
            RecordItem::JournalEntry { shared: j.shared_at.is_some() },
            (
                "journal",
                json!({"id": j.id, "session_id": j.session_id, "written_at": j.written_at.0,
                "shared_at": j.shared_at.map(|t| t.0), "text": j.body}),
            ),
        ));
    }
    for r in store::of_patient(&state.db, clinic, patient).await?.iter().filter(|r| r.kind == "amendment") {
        let v = view(r, today(state, clinic).await?)?;
        items.push((
            RecordItem::AmendmentRecord,
            ("amendments", serde_json::to_value(&v).map_err(|e| AppError::Internal(e.into()))?),
        ));
    }
    const ORDER: [(&str, &str); 11] = [
        ("consultation", "Consultation"),
        ("eligibility", "Eligibility decisions"),
        ("consents", "Consents"),
        ("questionnaires", "Questionnaires and scores"),
        ("courses", "Treatment courses"),
        ("appointments", "Appointments"),
        ("sessions", "Dosing sessions"),
        ("rems", "REMS monitoring forms"),
        ("integration_notes", "Integration notes"),
        ("journal", "Journal entries shared with the care team"),
        ("amendments", "Amendment requests"),
    ];
    let included = record_set(items);
    let sections = ORDER
        .iter()
        .map(|(key, title)| Section {
            key,
            title,
            items: included.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect(),
        })
        .collect();
    Ok((demographics, sections))
}

/// The designated record set for an access request: staff of the clinic for any request; the
/// patient only for their own request once it has been provided. Audited as an export (ids).
pub async fn export(state: &AppState, by: &CurrentUser, id: Uuid) -> Result<RecordExport, AppError> {
    let row = store::one(&state.db, by.clinic, id).await?.ok_or(AppError::NotFound)?;
    if row.kind != "access" {
        return Err(AppError::NotFound);
    }
    if !by.role.is_staff() {
        if by.patient.map(|p| p.as_uuid()) != Some(row.patient_id) {
            return Err(AppError::NotFound);
        }
        if row.outcome.as_deref() != Some("provided") {
            return Err(AppError::Refused {
                code: "state",
                field: None,
                message: "your copy is ready once the clinic has provided it".into(),
            });
        }
    }
    super::reauth::before_export(state, by).await?;
    let patient = PatientId::from_uuid(row.patient_id);
    let (demographics, sections) = gather(state, by.clinic, patient).await?;
    let mut e = by.event(AuditAction::RecordExported, "record_request", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(format!("{} items", sections.iter().map(|s| s.items.len()).sum::<usize>()));
    state.read_audit.record(e).await?;
    Ok(RecordExport {
        request_id: id,
        patient_id: row.patient_id,
        generated_at: kapstone_domain::UtcTs::now(),
        excluded: vec![
            "psychotherapy notes (45 CFR 164.501, 164.524(a)(1)(i))",
            "unsigned drafts",
            "private journal entries",
            "the access log (shown separately as \"who viewed my record\")",
        ],
        demographics,
        sections,
    })
}
