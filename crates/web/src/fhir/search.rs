//! Read and search: rows in key order, mapped to resources, filtered, paged with a cursor.
//! Each read and each search is audited before it is answered (a Patient read as a patient
//! read, the rest as `fhir.read` naming the type and the patient when there is one).

use kapstone_domain::PatientId;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::instruments::Instrument;
use kapstone_store::fhir::{
    self as store, AppointmentRow, ConsentRow, ConsultationRow, EventRow, Filter, LocationRow, PatientRow, ResponseRow,
    SessionRow, SourceRow, StaffRow, Start,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::FhirError;
use super::params::{Cursor, Search};
use super::resources::{self as res, Ctx, Kind};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// The stored sources of a resource type, in paging order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Patients,
    Staff,
    Locations,
    Appointments,
    Sessions,
    Consultations,
    Events,
    Responses,
    Consents,
    Questionnaires,
    Audit,
}

pub fn parts(kind: Kind) -> &'static [Part] {
    match kind {
        Kind::Patient => &[Part::Patients],
        Kind::Practitioner => &[Part::Staff],
        Kind::Location => &[Part::Locations],
        Kind::Appointment => &[Part::Appointments],
        Kind::Encounter => &[Part::Sessions],
        Kind::Condition | Kind::AllergyIntolerance | Kind::MedicationStatement => &[Part::Consultations],
        Kind::MedicationAdministration => &[Part::Events],
        Kind::Observation => &[Part::Consultations, Part::Events, Part::Responses],
        Kind::Questionnaire => &[Part::Questionnaires],
        Kind::QuestionnaireResponse => &[Part::Responses],
        Kind::Consent => &[Part::Consents],
        Kind::AuditEvent => &[Part::Audit],
    }
}

/// Types whose `date` parameter is the row's own time column, so it can go into the SQL.
fn date_in_sql(kind: Kind) -> bool {
    matches!(kind, Kind::Appointment | Kind::Encounter | Kind::QuestionnaireResponse | Kind::Consent | Kind::AuditEvent)
}

pub fn expand_consultation(kind: Kind, r: &ConsultationRow) -> Vec<Value> {
    match kind {
        Kind::Condition => res::clinical::conditions(r),
        Kind::AllergyIntolerance => res::clinical::allergies(r),
        Kind::MedicationStatement => res::clinical::medication_statements(r),
        Kind::Observation => res::observations::baseline_vitals(r),
        _ => Vec::new(),
    }
}

pub fn expand_event(kind: Kind, r: &EventRow) -> Vec<Value> {
    match kind {
        Kind::Observation => res::observations::reading_vitals(r),
        Kind::MedicationAdministration => res::observations::administrations(r),
        _ => Vec::new(),
    }
}

pub fn expand_response(kind: Kind, ctx: &Ctx, r: &ResponseRow) -> Vec<Value> {
    match kind {
        Kind::Observation => res::questionnaires::result_observations(r),
        Kind::QuestionnaireResponse => res::questionnaires::response(ctx, r),
        _ => Vec::new(),
    }
}

pub fn questionnaires(ctx: &Ctx) -> Vec<Value> {
    Instrument::ALL.into_iter().filter_map(|i| res::questionnaires::questionnaire(ctx, i)).collect()
}

struct Collect<'a> {
    want: usize,
    keep: &'a (dyn Fn(&Value) -> bool + Sync),
    out: Vec<Value>,
}

impl Collect<'_> {
    /// Adds one row's resources from position `from`; `Err(sub)` when the page is full and the
    /// resource at `sub` starts the next one.
    fn push(&mut self, resources: Vec<Value>, from: usize) -> Result<(), usize> {
        for (i, r) in resources.into_iter().enumerate().skip(from) {
            if !(self.keep)(&r) {
                continue;
            }
            if self.out.len() == self.want {
                return Err(i);
            }
            self.out.push(r);
        }
        Ok(())
    }
}

/// Pages through one source from `cursor` until the page is full (returning where the next
/// page starts) or the source is exhausted.
async fn collect<R: SourceRow>(
    state: &AppState,
    f: &Filter,
    part: usize,
    cursor: Option<Cursor>,
    c: &mut Collect<'_>,
    expand: impl Fn(&R) -> Vec<Value>,
) -> Result<Option<Cursor>, AppError> {
    let batch = i64::try_from((c.want + 1).clamp(50, 500)).unwrap_or(500);
    let mut start = cursor.map(|c| Start::At(c.key));
    loop {
        let rows: Vec<R> = store::page(&state.db, f, start, batch).await?;
        let n = rows.len();
        for row in &rows {
            let key = row.key();
            let from = cursor.filter(|c| c.key == key).map_or(0, |c| c.sub);
            if let Err(sub) = c.push(expand(row), from) {
                return Ok(Some(Cursor { part, key, sub }));
            }
            start = Some(Start::After(key));
        }
        if i64::try_from(n).unwrap_or(0) < batch {
            return Ok(None);
        }
    }
}

async fn collect_audit(
    state: &AppState,
    f: &Filter,
    cursor: Option<Cursor>,
    c: &mut Collect<'_>,
) -> Result<Option<Cursor>, AppError> {
    let batch = i64::try_from((c.want + 1).clamp(50, 500)).unwrap_or(500);
    let mut start = cursor.map(|c| (c.key.k2, true));
    loop {
        let rows = store::audit_page(&state.db, f, start, batch).await?;
        for row in &rows {
            if let Err(sub) = c.push(vec![res::audit_event::audit_event(row)], 0) {
                return Ok(Some(Cursor { part: 0, key: store::Key { k1: Uuid::nil(), k2: row.seq }, sub }));
            }
            start = Some((row.seq, false));
        }
        if i64::try_from(rows.len()).unwrap_or(0) < batch {
            return Ok(None);
        }
    }
}

async fn collect_part(
    state: &AppState,
    ctx: &Ctx,
    kind: Kind,
    (index, part): (usize, Part),
    f: &Filter,
    cursor: Option<Cursor>,
    c: &mut Collect<'_>,
) -> Result<Option<Cursor>, AppError> {
    match part {
        Part::Patients => collect::<PatientRow>(state, f, index, cursor, c, |r| vec![res::people::patient(r)]).await,
        Part::Staff => collect::<StaffRow>(state, f, index, cursor, c, |r| vec![res::people::practitioner(r)]).await,
        Part::Locations => collect::<LocationRow>(state, f, index, cursor, c, |r| vec![res::people::location(r)]).await,
        Part::Appointments => {
            collect::<AppointmentRow>(state, f, index, cursor, c, |r| vec![res::schedule::appointment(r)]).await
        }
        Part::Sessions => {
            collect::<SessionRow>(state, f, index, cursor, c, |r| vec![res::schedule::encounter(r)]).await
        }
        Part::Consultations => {
            collect::<ConsultationRow>(state, f, index, cursor, c, |r| expand_consultation(kind, r)).await
        }
        Part::Events => collect::<EventRow>(state, f, index, cursor, c, |r| expand_event(kind, r)).await,
        Part::Responses => collect::<ResponseRow>(state, f, index, cursor, c, |r| expand_response(kind, ctx, r)).await,
        Part::Consents => collect::<ConsentRow>(state, f, index, cursor, c, |r| vec![res::consent::consent(r)]).await,
        Part::Questionnaires => {
            let all = questionnaires(ctx);
            let from = cursor.map_or(0, |c| c.sub);
            Ok(c.push(all, from).err().map(|sub| Cursor {
                part: index,
                key: store::Key { k1: Uuid::nil(), k2: 0 },
                sub,
            }))
        }
        Part::Audit => collect_audit(state, f, cursor, c).await,
    }
}

pub fn ctx(state: &AppState) -> Ctx {
    Ctx { base: format!("{}/fhir/R4", state.config.public_url.trim_end_matches('/')) }
}

/// The patient a resource belongs to (for the audit row).
fn patient_of(kind: Kind, r: &Value) -> Option<PatientId> {
    let reference = match kind {
        Kind::Patient => return r["id"].as_str().and_then(|s| s.parse().ok()),
        Kind::AllergyIntolerance | Kind::Consent => &r["patient"]["reference"],
        Kind::Appointment => &r["participant"][0]["actor"]["reference"],
        Kind::AuditEvent => return None,
        _ => &r["subject"]["reference"],
    };
    reference.as_str().and_then(|s| s.strip_prefix("Patient/")).and_then(|s| s.parse().ok())
}

/// A search of one type: a `searchset` Bundle with a `next` link while more remain.
pub async fn search(state: &AppState, user: &CurrentUser, kind: Kind, raw: Option<&str>) -> Result<Value, FhirError> {
    let params = Search::parse(kind, raw)?;
    let ctx = ctx(state);
    let mut f = Filter { clinic: user.clinic.as_uuid(), patient: params.patient, ..Default::default() };
    if date_in_sql(kind) {
        f.from = params.from;
        f.to = params.to;
    }
    if let Some(mrn) = &params.identifier {
        f.eq.push(store::Eq::Mrn(mrn.clone()));
    }
    if let Some(d) = params.birthdate {
        f.eq.push(store::Eq::BirthDate(d));
    }
    if let Some(q) = params.questionnaire.filter(|_| kind == Kind::QuestionnaireResponse) {
        f.eq.push(store::Eq::Instrument(q.as_str().to_owned()));
    }
    let keep = |r: &Value| params.matches(kind, r);
    let mut c = Collect { want: params.count, keep: &keep, out: Vec::new() };
    let mut next = None;
    let first = params.cursor.map_or(0, |c| c.part);
    for (index, part) in parts(kind).iter().copied().enumerate().skip(first) {
        let cursor = params.cursor.filter(|c| c.part == index);
        next = collect_part(state, &ctx, kind, (index, part), &f, cursor, &mut c).await?;
        if next.is_some() {
            break;
        }
    }
    let mut e = user.event(AuditAction::FhirRead, kind.as_str(), Outcome::Success);
    e.patient_id = params.patient.map(PatientId::from_uuid);
    e.reason = Some(format!("search: {} resources", c.out.len()));
    state.read_audit.record(e).await.map_err(AppError::from)?;

    let link = |cursor: Option<&Cursor>| {
        let mut pairs = params.pairs.clone();
        if let Some(cur) = cursor {
            pairs.push(("_cursor".into(), cur.encode()));
        }
        let q = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if q.is_empty() {
            format!("{}/{}", ctx.base, kind.as_str())
        } else {
            format!("{}/{}?{q}", ctx.base, kind.as_str())
        }
    };
    let mut links = vec![json!({ "relation": "self", "url": link(params.cursor.as_ref()) })];
    if let Some(n) = &next {
        links.push(json!({ "relation": "next", "url": link(Some(n)) }));
    }
    let entries: Vec<Value> = c
        .out
        .into_iter()
        .map(|r| {
            let full = format!("{}/{}/{}", ctx.base, kind.as_str(), r["id"].as_str().unwrap_or_default());
            json!({ "fullUrl": full, "resource": r, "search": { "mode": "match" } })
        })
        .collect();
    Ok(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    }))
}

fn malformed(kind: Kind) -> FhirError {
    FhirError::invalid(Some("id"), format!("not a {} id of this server", kind.as_str()))
}

fn uuid_id(kind: Kind, id: &str) -> Result<Uuid, FhirError> {
    Uuid::try_parse(id).map_err(|_| malformed(kind))
}

/// `{uuid}.{number}`
fn uuid_seq(kind: Kind, id: &str) -> Result<(Uuid, i32), FhirError> {
    let (a, b) = id.split_once('.').ok_or_else(|| malformed(kind))?;
    Ok((uuid_id(kind, a)?, b.parse().map_err(|_| malformed(kind))?))
}

async fn first<R: SourceRow>(state: &AppState, f: &Filter) -> Result<Option<R>, AppError> {
    Ok(store::page::<R>(&state.db, f, None, 1).await?.into_iter().next())
}

/// One resource by id, audited (a Patient as a patient read).
pub async fn read(state: &AppState, user: &CurrentUser, kind: Kind, id: &str) -> Result<Value, FhirError> {
    let valid =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(malformed(kind));
    }
    let ctx = ctx(state);
    let clinic = user.clinic.as_uuid();
    let by_id = |u: Uuid| Filter { clinic, eq: vec![store::Eq::Id(u)], ..Default::default() };
    let found: Vec<Value> = match kind {
        Kind::Patient => first::<PatientRow>(state, &by_id(uuid_id(kind, id)?))
            .await?
            .map(|r| res::people::patient(&r))
            .into_iter()
            .collect(),
        Kind::Practitioner => first::<StaffRow>(state, &by_id(uuid_id(kind, id)?))
            .await?
            .map(|r| res::people::practitioner(&r))
            .into_iter()
            .collect(),
        Kind::Location => first::<LocationRow>(state, &by_id(uuid_id(kind, id)?))
            .await?
            .map(|r| res::people::location(&r))
            .into_iter()
            .collect(),
        Kind::Appointment => first::<AppointmentRow>(state, &by_id(uuid_id(kind, id)?))
            .await?
            .map(|r| res::schedule::appointment(&r))
            .into_iter()
            .collect(),
        Kind::Encounter => first::<SessionRow>(state, &by_id(uuid_id(kind, id)?))
            .await?
            .map(|r| res::schedule::encounter(&r))
            .into_iter()
            .collect(),
        Kind::Consent => first::<ConsentRow>(state, &by_id(uuid_id(kind, id)?))
            .await?
            .map(|r| res::consent::consent(&r))
            .into_iter()
            .collect(),
        Kind::QuestionnaireResponse => match first::<ResponseRow>(state, &by_id(uuid_id(kind, id)?)).await? {
            Some(r) => expand_response(kind, &ctx, &r),
            None => Vec::new(),
        },
        Kind::Condition | Kind::AllergyIntolerance | Kind::MedicationStatement => {
            let (u, _) = uuid_seq(kind, id)?;
            match store::consultation(&state.db, clinic, u).await.map_err(AppError::from)? {
                Some(r) => expand_consultation(kind, &r),
                None => Vec::new(),
            }
        }
        Kind::MedicationAdministration => {
            let (u, seq) = uuid_seq(kind, id)?;
            match store::event(&state.db, clinic, u, seq).await.map_err(AppError::from)? {
                Some(r) => expand_event(kind, &r),
                None => Vec::new(),
            }
        }
        Kind::Observation => {
            let parts: Vec<&str> = id.split('.').collect();
            match parts.as_slice() {
                [session, seq, _] => {
                    let seq: i32 = seq.parse().map_err(|_| malformed(kind))?;
                    match store::event(&state.db, clinic, uuid_id(kind, session)?, seq).await.map_err(AppError::from)? {
                        Some(r) => expand_event(kind, &r),
                        None => Vec::new(),
                    }
                }
                [row, "total" | "risk"] => match first::<ResponseRow>(state, &by_id(uuid_id(kind, row)?)).await? {
                    Some(r) => expand_response(kind, &ctx, &r),
                    None => Vec::new(),
                },
                [row, _] => {
                    match store::consultation(&state.db, clinic, uuid_id(kind, row)?).await.map_err(AppError::from)? {
                        Some(r) => expand_consultation(kind, &r),
                        None => Vec::new(),
                    }
                }
                _ => return Err(malformed(kind)),
            }
        }
        Kind::Questionnaire => {
            let i = res::questionnaires::instrument_of(id).ok_or_else(|| malformed(kind))?;
            res::questionnaires::questionnaire(&ctx, i).into_iter().collect()
        }
        Kind::AuditEvent => {
            let seq: i64 = id.parse().map_err(|_| malformed(kind))?;
            let f = Filter { clinic, ..Default::default() };
            store::audit_page(&state.db, &f, Some((seq, true)), 1)
                .await
                .map_err(AppError::from)?
                .into_iter()
                .filter(|r| r.seq == seq)
                .map(|r| res::audit_event::audit_event(&r))
                .collect()
        }
    };
    let resource = found.into_iter().find(|r| r["id"].as_str() == Some(id));
    let action = if kind == Kind::Patient { AuditAction::PatientRead } else { AuditAction::FhirRead };
    let outcome = if resource.is_some() { Outcome::Success } else { Outcome::Failure };
    let mut e = user.event(action, kind.as_str(), outcome);
    e.entity_id = Some(id.to_owned());
    e.patient_id = resource.as_ref().and_then(|r| patient_of(kind, r));
    state.read_audit.record(e).await.map_err(AppError::from)?;
    resource.ok_or_else(|| FhirError::not_found(format!("{}/{id} is not known", kind.as_str())))
}
