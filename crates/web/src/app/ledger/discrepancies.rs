//! Discrepancies (KAP-SPEC 9.4; TV-DEA-1, TV-DEA-2, TV-DEA-5): opened by a count that differs or
//! by an incident, investigated, judged by the registrant, reported (written notice within 1
//! business day, DEA Form 106 within 45 days) and closed. The events are the record.

use kapstone_domain::FieldError;
use kapstone_domain::UtcTs;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::ids::LedgerEntryId;
use kapstone_domain::ledger::discrepancy::{
    Deadline, Discrepancy, DiscrepancyContext, DiscrepancyEvent, DiscrepancyRecord, LossDeadlines, Origin,
    check_opening,
};
use kapstone_domain::ledger::{Bucket, LedgerSettings, Micrograms};
use kapstone_store::ledger::{self as store, EntryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{audit_read, entry_of, person, place, places, refused, registered};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DiscrepancyView {
    pub id: Uuid,
    pub location: Uuid,
    pub location_name: String,
    pub open: bool,
    pub discrepancy: Discrepancy,
    pub difference_mg: Option<f64>,
    /// Explained by entries later included in the count (a receipt found missing).
    pub explained_mg: f64,
    pub deadlines: Option<LossDeadlines>,
    /// The notice and Form 106 timers today, once judged a theft or significant loss.
    pub notice: Option<Deadline>,
    pub form_106: Option<Deadline>,
}

fn parse_records(bodies: &[String]) -> Result<Vec<DiscrepancyRecord>, AppError> {
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(|_| AppError::Internal(anyhow::anyhow!("stored discrepancy event"))))
        .collect()
}

async fn settings_of(state: &AppState, user: &CurrentUser, location: Uuid) -> Result<LedgerSettings, AppError> {
    Ok(match store::registration(&state.db, user.clinic.as_uuid(), location).await? {
        Some(r) => registered(&r)?.settings,
        None => LedgerSettings::default(),
    })
}

/// How much of a count's difference entries later included in it explain.
async fn explained(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    d: &Discrepancy,
) -> Result<Micrograms, AppError> {
    let Origin::Count { count_entry, product, lot, .. } = &d.origin else { return Ok(Micrograms::ZERO) };
    let f = EntryFilter { product: Some(product.as_uuid()), lot: Some(lot.to_string()), ..EntryFilter::default() };
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let batch = store::entries(
            &state.db,
            user.clinic.as_uuid(),
            location,
            &EntryFilter { after_seq: after, ..f.clone() },
            5000,
        )
        .await?;
        let Some(last) = batch.last().map(|s| s.seq) else { break };
        for s in &batch {
            entries.push(entry_of(s)?);
        }
        after = Some(last);
    }
    Ok(Bucket::fold(&entries).explained_by_later_entries(LedgerEntryId::from_uuid(count_entry.as_uuid())))
}

async fn view(
    state: &AppState,
    user: &CurrentUser,
    row: &store::DiscrepancyRow,
    records: &[DiscrepancyRecord],
    location_name: String,
) -> Result<DiscrepancyView, AppError> {
    let d = Discrepancy::replay(records)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("discrepancy without opening")))?;
    let settings = settings_of(state, user, row.location_id).await?;
    let today = places(&state.db, user).await?.into_iter().find(|p| p.id == row.location_id).map_or_else(
        || crate::app::scheduling::to_jiff(UtcTs::now()).to_zoned(jiff::tz::TimeZone::UTC).date(),
        |p| p.date_of(UtcTs::now()),
    );
    let explained = explained(state, user, row.location_id, &d).await?;
    Ok(view_of(row.id, row.location_id, location_name, d, &settings, today, explained))
}

/// The view of discrepancy `id` at `location` as `d`, on `today` where the location is.
fn view_of(
    id: Uuid,
    location: Uuid,
    location_name: String,
    d: Discrepancy,
    settings: &LedgerSettings,
    today: jiff::civil::Date,
    explained: Micrograms,
) -> DiscrepancyView {
    let timers = d.timers(today, &settings.holidays);
    DiscrepancyView {
        id,
        location,
        location_name,
        open: d.is_open(),
        difference_mg: d.origin.difference().map(Micrograms::mg),
        explained_mg: explained.mg(),
        deadlines: d.deadlines(&settings.holidays),
        notice: timers.map(|t| t.0),
        form_106: timers.map(|t| t.1),
        discrepancy: d,
    }
}

/// The discrepancy `id` as it stands in `tx` (its change just written), viewed as [`show`] views
/// it, and its read audited in `tx` as [`show`] audits it: the API answers a change with this,
/// and stores the answer with the change (issue 9). `place`, `settings` and `explained` were read
/// before the change, which does not alter them.
async fn shown_in(
    tx: &mut kapstone_store::Tx,
    user: &CurrentUser,
    id: Uuid,
    place: &super::Place,
    settings: &LedgerSettings,
    explained: Micrograms,
    now: UtcTs,
) -> Result<DiscrepancyView, AppError> {
    let (row, bodies) = store::discrepancy_in(tx, user.clinic.as_uuid(), id).await?.ok_or(AppError::NotFound)?;
    let d = Discrepancy::replay(&parse_records(&bodies)?)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("discrepancy without opening")))?;
    let v = view_of(row.id, row.location_id, place.name.clone(), d, settings, place.date_of(now), explained);
    kapstone_store::audit::append(tx, &super::read_event(user, Some(row.location_id), format!("discrepancy {id}")))
        .await?;
    Ok(v)
}

/// The clinic's discrepancies, open ones first (the admin dashboard shows the open ones).
pub async fn list(state: &AppState, user: &CurrentUser, open_only: bool) -> Result<Vec<DiscrepancyView>, AppError> {
    let names: std::collections::BTreeMap<Uuid, String> =
        places(&state.db, user).await?.into_iter().map(|p| (p.id, p.name)).collect();
    let mut out = Vec::new();
    for row in store::discrepancies(&state.db, user.clinic.as_uuid(), open_only).await? {
        let records = parse_records(&store::discrepancy_events(&state.db, row.id).await?)?;
        let name = names.get(&row.location_id).cloned().unwrap_or_default();
        out.push(view(state, user, &row, &records, name).await?);
    }
    audit_read(state, user, None, format!("discrepancies: {}", out.len())).await?;
    Ok(out)
}

pub async fn show(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<DiscrepancyView, AppError> {
    let row = store::discrepancies(&state.db, user.clinic.as_uuid(), false)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or(AppError::NotFound)?;
    let records = parse_records(&store::discrepancy_events(&state.db, id).await?)?;
    let name = places(&state.db, user).await?.into_iter().find(|p| p.id == row.location_id).map(|p| p.name);
    let v = view(state, user, &row, &records, name.unwrap_or_default()).await?;
    audit_read(state, user, Some(row.location_id), format!("discrepancy {id}")).await?;
    Ok(v)
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentInput {
    pub location: Uuid,
    pub description: String,
    #[serde(default)]
    pub found_on: Option<jiff::civil::Date>,
}

/// A discrepancy found another way than by a count (a break-in, a container missing).
pub async fn open_incident(
    state: &AppState,
    user: &CurrentUser,
    input: IncidentInput,
) -> Result<DiscrepancyView, AppError> {
    let place = place(state, user, input.location).await?;
    let settings = settings_of(state, user, input.location).await?;
    let now = UtcTs::now();
    let today = place.date_of(now);
    let record = DiscrepancyRecord {
        at: now,
        by: person(user),
        event: DiscrepancyEvent::Opened {
            origin: Origin::Incident { description: input.description.trim().to_owned() },
            found_on: input.found_on.unwrap_or(today),
        },
    };
    check_opening(&record, today).map_err(refused)?;
    let id = Uuid::now_v7();
    let found_on = input.found_on.unwrap_or(today).to_string();
    let body = serde_json::to_string(&record).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    store::insert_discrepancy(&mut tx, id, user.clinic.as_uuid(), input.location, &found_on, now).await?;
    store::append_discrepancy_event(&mut tx, id, 1, now, user.id.as_uuid(), &body).await?;
    let mut e = user.event(AuditAction::DiscrepancyRecorded, "cs_discrepancy", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some("opened: incident".into());
    kapstone_store::audit::append(&mut tx, &e).await?;
    // An incident explains nothing by later entries (only a count's difference can be).
    let v = shown_in(&mut tx, user, id, &place, &settings, Micrograms::ZERO, now).await?;
    tx.commit_answering(&v).await?;
    Ok(v)
}

/// Adds a step: a note, the registrant's judgement, the notice, the Form 106 submission, or the
/// close. The domain decides whether it may be added now and by whom.
pub async fn record(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    event: DiscrepancyEvent,
) -> Result<DiscrepancyView, AppError> {
    if matches!(event, DiscrepancyEvent::Opened { .. }) {
        return Err(FieldError::new("kind", "a discrepancy is opened by a count or as an incident").into());
    }
    let now = UtcTs::now();
    // What the decision reads through the pool is read before the row is locked.
    let location = store::discrepancies(&state.db, user.clinic.as_uuid(), false)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .map(|d| d.location_id)
        .ok_or(AppError::NotFound)?;
    let place = place(state, user, location).await?;
    let settings = settings_of(state, user, location).await?;
    let before = Discrepancy::replay(&parse_records(&store::discrepancy_events(&state.db, id).await?)?)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("discrepancy")))?;
    let explained = explained(state, user, location, &before).await?;
    let mut tx = state.db.begin().await?;
    let Some((_, bodies)) = store::discrepancy_in(&mut tx, user.clinic.as_uuid(), id).await? else {
        return Err(AppError::NotFound);
    };
    let records = parse_records(&bodies)?;
    let d = Discrepancy::replay(&records).ok_or_else(|| AppError::Internal(anyhow::anyhow!("discrepancy")))?;
    let record = DiscrepancyRecord { at: now, by: person(user), event };
    let ctx = DiscrepancyContext { today: place.date_of(now), holidays: &settings.holidays, explained };
    d.decide(&record, &ctx).map_err(refused)?;
    let body = serde_json::to_string(&record).map_err(|e| AppError::Internal(e.into()))?;
    let seq = i64::try_from(records.len()).unwrap_or(i64::MAX) + 1;
    store::append_discrepancy_event(&mut tx, id, seq, now, user.id.as_uuid(), &body).await?;
    let kind = match &record.event {
        DiscrepancyEvent::Opened { .. } => "opened",
        DiscrepancyEvent::NoteAdded { .. } => "note",
        DiscrepancyEvent::JudgedNotSignificant { .. } => "judged not significant",
        DiscrepancyEvent::JudgedTheftOrLoss { .. } => "judged theft or significant loss",
        DiscrepancyEvent::NoticeSent { .. } => "notice sent",
        DiscrepancyEvent::Form106Submitted { .. } => "Form 106 submitted",
        DiscrepancyEvent::Closed { .. } => "closed",
    };
    if matches!(record.event, DiscrepancyEvent::Closed { .. }) {
        store::close_discrepancy(&mut tx, id, now).await?;
    }
    let mut e = user.event(AuditAction::DiscrepancyRecorded, "cs_discrepancy", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some(kind.to_owned());
    kapstone_store::audit::append(&mut tx, &e).await?;
    // A step never changes the origin: what explains a count's difference is as read above.
    let v = shown_in(&mut tx, user, id, &place, &settings, explained, now).await?;
    tx.commit_answering(&v).await?;
    Ok(v)
}
