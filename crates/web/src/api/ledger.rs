//! The controlled-substance ledger over JSON (KAP-SPEC 9, issue 6): `/api/v1/cs/...`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kapstone_domain::ledger::discrepancy::DiscrepancyEvent;
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::keyset::TimeKey;
use kapstone_store::ledger::EntryFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery, query};
use crate::app::ledger::{discrepancies, registry, reports, transactions};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// 201 with `v`: the answer of a ledger write, stored with it (see [`super::idempotency::answered`]).
fn created<T: serde::Serialize>(v: &T) -> Result<(StatusCode, Value), AppError> {
    Ok((StatusCode::CREATED, to_json(v)?))
}

fn uuid_field(field: &'static str, raw: Option<&str>) -> Result<Uuid, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(FieldError::new(field, "this is required").into());
    };
    raw.parse().map_err(|_| FieldError::new(field, "not a valid id").into())
}

fn path_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LocationQuery {
    location: Option<String>,
}

/// `GET /api/v1/cs/registry`: locations with their registration and settings, products, lots.
pub async fn registry(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let r = registry::registry(&state, &user).await?;
    crate::app::ledger::audit_read(&state, &user, None, "registry".into()).await?;
    Ok(Json(to_json(&r)?))
}

/// `PUT /api/v1/cs/locations/{id}/registration`: the location's DEA registration and settings.
pub async fn save_registration(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<registry::RegistrationInput>,
) -> ApiResult<Json<Value>> {
    let (_, Json(v)) = super::idempotency::answered(
        |v: &registry::RegistrationView| Ok((StatusCode::OK, to_json(v)?)),
        registry::save_registration(&state, &user, path_id(&id)?, b),
    )
    .await?;
    Ok(Json(v))
}

/// `POST /api/v1/cs/products`: a product the clinic stocks.
pub async fn add_product(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<registry::ProductInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, registry::add_product(&state, &user, b)).await
}

/// `POST /api/v1/cs/lots`: a lot already on the shelf, before the initial inventory counts it.
pub async fn add_lot(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<registry::LotInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, registry::add_lot(&state, &user, b)).await
}

/// `POST /api/v1/cs/draws/{id}/administration`: what was given from a draw, when the session
/// could not record it (stopped early).
pub async fn administer(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<transactions::AdministrationInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::administer(&state, &user, path_id(&id)?, b)).await
}

/// `GET /api/v1/cs/balance?location=`: `{"items": [{"product", "lot", "on_hand_mg", ...}]}`.
pub async fn balance(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<LocationQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let location = uuid_field("location", q.location.as_deref())?;
    let items = reports::balance(&state, &user, location).await?;
    Ok(Json(to_json(&Balance { location, items })?))
}

/// The answer of `GET /api/v1/cs/balance`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Balance {
    pub location: Uuid,
    pub items: Vec<reports::BalanceLine>,
}

/// The answer of `GET /api/v1/cs/ledger`: a page of entries of one location.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct LedgerPage {
    pub location: Uuid,
    pub items: Vec<reports::EntryView>,
    /// Opaque; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/cs/overview?location=`: balances, draws in use, inventory status, discrepancies.
pub async fn overview(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<LocationQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let location = uuid_field("location", q.location.as_deref())?;
    Ok(Json(to_json(&reports::overview(&state, &user, location).await?)?))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    location: Option<String>,
    from: Option<String>,
    to: Option<String>,
    product: Option<String>,
    lot: Option<String>,
    kind: Option<String>,
    patient: Option<String>,
    after_seq: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The ledger filters as the API and the report page take them: `from` and `to` are RFC 3339
/// times or calendar dates at the location (`to` as a date includes that whole day).
pub async fn ledger_filter(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    from: Option<&str>,
    to: Option<&str>,
    kind: Option<&str>,
) -> Result<EntryFilter, AppError> {
    let place = crate::app::ledger::place(state, user, location).await?;
    let (from, to) = page::window(from, to, &place.tz)?;
    let kind = match kind.map(str::trim).filter(|s| !s.is_empty()) {
        Some(k) => Some(
            kapstone_domain::ledger::EntryKind::parse(k)
                .ok_or_else(|| FieldError::new("kind", "not a kind of ledger entry"))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    Ok(EntryFilter { from, to, kind, ..EntryFilter::default() })
}

/// `GET /api/v1/cs/ledger?location=&from=&to=&product=&lot=&kind=&patient=&after_seq=&limit=&cursor=`:
/// the location's entries in chain order, a page at a time (see [`page`]); the cursor carries the
/// chain sequence number of the last entry sent. `after_seq` stays a filter (the entries after
/// that sequence number), for a client that keeps its own place in the chain.
pub async fn ledger(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<LedgerQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let location = uuid_field("location", q.location.as_deref())?;
    let mut f = ledger_filter(&state, &user, location, q.from.as_deref(), q.to.as_deref(), q.kind.as_deref()).await?;
    if q.product.is_some() {
        f.product = Some(uuid_field("product", q.product.as_deref())?);
    }
    if let Some(lot) = q.lot.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        f.lot = Some(kapstone_domain::ledger::LotNumber::parse("lot", lot)?.to_string());
    }
    if let Some(p) = q.patient.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        f.patient = Some(p.parse().map_err(|_| FieldError::new("patient", "not a patient id"))?);
    }
    if let Some(a) = q.after_seq.as_deref() {
        f.after_seq = Some(a.trim().parse().map_err(|_| FieldError::new("after_seq", "a whole number"))?);
    }
    let limit = page::limit(q.limit.as_deref())?;
    // Both the cursor and after_seq say "after this entry": the later one holds.
    f.after_seq = f.after_seq.max(page::after::<i64>(q.cursor.as_deref())?);
    let p = reports::ledger(&state, &user, location, f, limit).await?;
    let next_cursor = p.next_after_seq.map(|seq| page::cursor(&seq));
    Ok(Json(to_json(&LedgerPage { location: p.location, items: p.items, next_cursor })?))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LotQuery {
    location: Option<String>,
    product: Option<String>,
    lot: Option<String>,
}

/// `GET /api/v1/cs/lot?location=&product=&lot=`: a lot's running balance and reconciliation.
pub async fn lot(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<LotQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let location = uuid_field("location", q.location.as_deref())?;
    let product = uuid_field("product", q.product.as_deref())?;
    let lot = q.lot.as_deref().ok_or_else(|| FieldError::new("lot", "this is required"))?;
    Ok(Json(to_json(&reports::lot_report(&state, &user, location, product, lot).await?)?))
}

/// `GET /api/v1/patients/{id}/dispensing?from=&to=&limit=&cursor=`: the patient's dispensing log,
/// oldest first, a page at a time (see [`page`]); `from`/`to` filter on when the entry happened.
pub async fn dispensing(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    q: ListQuery,
) -> ApiResult<Json<Value>> {
    let patient = PatientId::from_uuid(path_id(&id)?);
    kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let mut q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Dates]).await?;
    q.filter.patient = Some(patient);
    let (items, next) = reports::dispensing_log(&state, &user, &q.filter, q.after, q.limit).await?;
    Ok(Json(page::body(items.iter().map(page::item).collect(), next.as_ref())))
}

/// `POST /api/v1/cs/receipts`: containers received from a supplier.
pub async fn receive(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<transactions::ReceiptInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::receive(&state, &user, b)).await
}

/// `POST /api/v1/cs/draws/{id}/waste`: the remainder of a draw wasted, with the witness.
pub async fn waste(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<transactions::WasteInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::waste(&state, &user, path_id(&id)?, b)).await
}

/// `POST /api/v1/cs/destructions`: on-site destruction with two witnesses (Form 41).
pub async fn destroy(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<transactions::DestructionInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::destroy(&state, &user, b)).await
}

/// `GET /api/v1/cs/entries/{id}/form-41`: a destruction's DEA Form 41 content.
pub async fn form_41(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let form = reports::form_41(&state, &user, path_id(&id)?).await?;
    Ok(Json(to_json(&form)?))
}

/// `POST /api/v1/cs/transfers`: a return to the supplier or a transfer to another registrant.
pub async fn transfer(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<transactions::TransferInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::transfer(&state, &user, b)).await
}

/// `POST /api/v1/cs/adjustments`: a correction with its reason.
pub async fn adjust(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<transactions::AdjustmentInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::adjust(&state, &user, b)).await
}

/// `POST /api/v1/cs/entries/{id}/reversal`: undoes a mistaken entry, keeping it.
pub async fn reverse(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<transactions::ReversalInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::reverse(&state, &user, path_id(&id)?, b)).await
}

/// `POST /api/v1/cs/counts`: a physical count; returns the discrepancies it opened.
pub async fn count(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<transactions::CountInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, transactions::count(&state, &user, b)).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DiscrepancyQuery {
    open: Option<String>,
}

/// `GET /api/v1/cs/discrepancies?open=true`: the clinic's discrepancies with their timers.
pub async fn discrepancies(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<DiscrepancyQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let open_only = match q.open.as_deref() {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => return Err(FieldError::new("open", "true or false").into()),
    };
    let items = discrepancies::list(&state, &user, open_only).await?;
    Ok(Json(json!({ "items": to_json(&items)? })))
}

/// `GET /api/v1/cs/discrepancies/{id}`.
pub async fn discrepancy(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&discrepancies::show(&state, &user, path_id(&id)?).await?)?))
}

/// `POST /api/v1/cs/discrepancies`: one found other than by a count (an incident).
pub async fn open_incident(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<discrepancies::IncidentInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        created::<discrepancies::DiscrepancyView>,
        discrepancies::open_incident(&state, &user, b),
    )
    .await
}

/// `POST /api/v1/cs/discrepancies/{id}/events`: a note, the judgement, the notice, Form 106, the
/// close (the domain's event JSON, `{"kind": ...}`).
pub async fn discrepancy_event(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(event): ApiJson<DiscrepancyEvent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        created::<discrepancies::DiscrepancyView>,
        discrepancies::record(&state, &user, path_id(&id)?, event),
    )
    .await
}
