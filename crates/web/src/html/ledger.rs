//! The controlled-substance pages (KAP-SPEC 9, issue 6): a location's stock at a glance with
//! what is due (inventory, waste of a draw, open discrepancies) and the forms to receive, count,
//! destroy and waste; the transactions report (screen, print, CSV); a discrepancy's record; the
//! registry. Every form works without JavaScript; a refusal shows the page again with the message
//! next to the form it belongs to and names the field.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::ids::CsProductId;
use kapstone_domain::ledger::discrepancy::{
    Deadline, DiscrepancyEvent, Judgement, LossKind, Origin, SignificanceFactor,
};
use kapstone_domain::ledger::inventory::{CountLine, InventoryStatus};
use kapstone_domain::ledger::{
    DestructionReason, InventoryKind, LotNumber, Measure, Microlitres, ProductForm, Substance, TakenAt,
};
use kapstone_domain::permissions::{Action, allows};
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence, when};
use crate::app::ledger::discrepancies::{self, DiscrepancyView};
use crate::app::ledger::registry::{self, ProductInput, RegistrationInput};
use crate::app::ledger::reports::{self, BalanceLine, EntryView, Overview};
use crate::app::ledger::transactions::{
    self, CountInput, DestructionInput, ReceiptInput, RegistrantInput, Stock, WasteInput,
};
use crate::app::ledger::witness::WitnessCredentials;
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

type Pairs = Vec<(String, String)>;

fn pairs(body: &str) -> Result<Pairs, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

fn get<'a>(p: &'a Pairs, k: &str) -> &'a str {
    p.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.trim())
}

fn opt(p: &Pairs, k: &str) -> Option<String> {
    Some(get(p, k).to_owned()).filter(|s| !s.is_empty())
}

fn uuid_of(p: &Pairs, k: &'static str) -> Result<Uuid, AppError> {
    get(p, k).parse().map_err(|_| kapstone_domain::FieldError::new(k, "choose one from the list").into())
}

fn number<T: std::str::FromStr>(p: &Pairs, k: &'static str) -> Result<T, AppError> {
    get(p, k).parse().map_err(|_| kapstone_domain::FieldError::new(k, "give a whole number").into())
}

fn date(p: &Pairs, k: &'static str) -> Result<jiff::civil::Date, AppError> {
    get(p, k).parse().map_err(|_| kapstone_domain::FieldError::new(k, "give a date (YYYY-MM-DD)").into())
}

fn witness(p: &Pairs, prefix: &str) -> WitnessCredentials {
    WitnessCredentials {
        email: get(p, &format!("{prefix}_email")).to_owned(),
        password: p
            .iter()
            .find(|(n, _)| *n == format!("{prefix}_password"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        totp_code: opt(p, &format!("{prefix}_totp")),
    }
}

/// A refusal shown next to its form: which form, the message, and the field it names.
#[derive(Clone)]
pub struct FormError {
    pub form: String,
    pub message: String,
    pub field: String,
}

fn form_error(form: &str, e: &AppError) -> FormError {
    FormError {
        form: form.to_owned(),
        message: sentence(&e.public_message("")),
        field: e.field().unwrap_or_default().to_owned(),
    }
}

fn is_shown(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Invalid(_)
            | AppError::InvalidItem { .. }
            | AppError::Refused { .. }
            | AppError::BadRequest { .. }
            | AppError::Conflict { .. }
    )
}

/// The unit a person counts a product in, and the input's step.
fn unit(form: &ProductForm) -> (&'static str, &'static str) {
    match form {
        ProductForm::Solution { .. } => ("mL", "0.001"),
        ProductForm::DeviceKit { .. } => ("devices", "1"),
        ProductForm::Tablets { .. } => ("tablets", "1"),
    }
}

/// The form of one of the clinic's products, named by a form's `product` field.
fn form_of(reg: &registry::Registry, product: Uuid) -> Result<ProductForm, AppError> {
    reg.products
        .iter()
        .find(|x| x.id.as_uuid() == product)
        .map(|x| x.form)
        .ok_or_else(|| kapstone_domain::FieldError::new("product", "unknown product").into())
}

/// A measure typed in the product's own unit.
fn measure_in(form: &ProductForm, field: &'static str, raw: &str) -> Result<Option<Measure>, AppError> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "0" {
        return Ok(None);
    }
    Ok(Some(match form {
        ProductForm::Solution { .. } => Measure::Volume(Microlitres::parse_ml(field, raw)?),
        ProductForm::DeviceKit { .. } => {
            Measure::Devices(raw.parse().map_err(|_| kapstone_domain::FieldError::new(field, "whole devices"))?)
        }
        ProductForm::Tablets { .. } => {
            Measure::Tablets(raw.parse().map_err(|_| kapstone_domain::FieldError::new(field, "whole tablets"))?)
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// The location's page
// ---------------------------------------------------------------------------------------------

pub struct LocationChoice {
    pub id: String,
    pub name: String,
    pub current: bool,
}

pub struct ProductChoice {
    pub id: String,
    pub name: String,
}

/// A lot line of the count form.
pub struct CountRow {
    pub i: usize,
    pub product: String,
    pub product_name: String,
    pub lot: String,
    pub on_hand: String,
    pub unit: &'static str,
    pub step: &'static str,
}

pub struct DrawRow {
    pub draw: String,
    pub administered: bool,
    pub product: String,
    pub lot: String,
    pub drawn_at: String,
    pub remainder: String,
}

pub struct DiscrepancyRow {
    pub id: String,
    pub found_on: String,
    pub what: String,
    pub status: String,
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "cs.html")]
struct CsPage {
    layout: Layout,
    location: String,
    location_name: String,
    locations: Vec<LocationChoice>,
    registered: bool,
    dea_number: String,
    registrant: String,
    storage_note: String,
    witness_required: bool,
    inventory: (String, &'static str),
    balances: Vec<BalanceLine>,
    draws: Vec<DrawRow>,
    discrepancies: Vec<DiscrepancyRow>,
    count_rows: Vec<CountRow>,
    products: Vec<ProductChoice>,
    inventories: Vec<(String, String, String, i64)>,
    can_record: bool,
    can_manage: bool,
    notice: Option<String>,
    error: Option<FormError>,
}

impl CsPage {
    fn err(&self, form: &str) -> Option<&FormError> {
        self.error.as_ref().filter(|e| e.form == form)
    }
}

fn inventory_words(s: &InventoryStatus) -> (String, &'static str) {
    match s {
        InventoryStatus::InitialNeeded => {
            ("No inventory yet: take the initial inventory on the day this location first administers".into(), "bad")
        }
        InventoryStatus::Current { due_by, remind_from } => {
            (format!("Biennial inventory due by {due_by} (reminder from {remind_from})"), "ok")
        }
        InventoryStatus::DueSoon { due_by } => (format!("Biennial inventory due soon: by {due_by}"), "warn"),
        InventoryStatus::Overdue { due_by } => (format!("Biennial inventory OVERDUE: it was due by {due_by}"), "bad"),
    }
}

pub fn deadline_words(name: &str, d: &Deadline) -> (String, &'static str) {
    match d {
        Deadline::Done { on, late: false } => (format!("{name} done {on}"), "ok"),
        Deadline::Done { on, late: true } => (format!("{name} done late, {on}"), "warn"),
        Deadline::Due { by } => (format!("{name} due by {by}"), "warn"),
        Deadline::Overdue { by } => (format!("{name} OVERDUE (was due by {by})"), "bad"),
    }
}

fn discrepancy_row(d: &DiscrepancyView) -> DiscrepancyRow {
    let what = match &d.discrepancy.origin {
        Origin::Count { lot, expected, counted, .. } => {
            format!("Lot {lot}: counted {counted}, the ledger expected {expected}")
        }
        Origin::Incident { description } => description.clone(),
    };
    let (status, class) = if !d.open {
        ("Closed".to_owned(), "ok")
    } else if let Some(n) = &d.notice {
        let (a, c1) = deadline_words("Notice", n);
        let (b, c2) = d.form_106.as_ref().map(|f| deadline_words("Form 106", f)).unwrap_or_default();
        let class = if c1 == "bad" || c2 == "bad" { "bad" } else { "warn" };
        (format!("{a}; {b}"), class)
    } else {
        ("Open: under investigation".to_owned(), "warn")
    };
    DiscrepancyRow { id: d.id.to_string(), found_on: d.discrepancy.found_on.to_string(), what, status, class }
}

#[derive(serde::Deserialize, Default)]
pub struct CsQuery {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    saved: Option<String>,
}

/// The location a page is about: the one asked for, else the first with a registration.
async fn chosen(state: &AppState, user: &CurrentUser, raw: Option<&str>) -> Result<Uuid, AppError> {
    if let Some(id) = raw.and_then(|r| r.parse::<Uuid>().ok()) {
        return Ok(id);
    }
    let reg = registry::registry(state, user).await?;
    reg.locations
        .iter()
        .find(|l| l.registration.is_some())
        .or_else(|| reg.locations.first())
        .map(|l| l.location_id)
        .ok_or(AppError::NotFound)
}

async fn cs_page(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    notice: Option<String>,
    error: Option<FormError>,
) -> PageResult<Html<String>> {
    let o: Overview = reports::overview(state, user, location).await?;
    let reg = registry::registry(state, user).await?;
    let open: Vec<DiscrepancyView> =
        discrepancies::list(state, user, true).await?.into_iter().filter(|d| d.location == location).collect();
    let mut count_rows = Vec::new();
    for (i, b) in o.balances.iter().enumerate() {
        let Some(p) = reg.products.iter().find(|p| p.id.as_uuid() == b.product) else { continue };
        let (unit, step) = unit(&p.form);
        count_rows.push(CountRow {
            i,
            product: b.product.to_string(),
            product_name: b.product_name.clone(),
            lot: b.lot.clone(),
            on_hand: format!("{} mg", b.on_hand),
            unit,
            step,
        });
    }
    let r = o.registration.as_ref();
    render(&CsPage {
        layout: Layout::for_user("Controlled substances", user, "/cs"),
        location: location.to_string(),
        location_name: o.location_name.clone(),
        locations: reg
            .locations
            .iter()
            .map(|l| LocationChoice {
                id: l.location_id.to_string(),
                name: l.name.clone(),
                current: l.location_id == location,
            })
            .collect(),
        registered: r.is_some(),
        dea_number: r.map(|r| r.dea_number.clone()).unwrap_or_default(),
        registrant: r.map(|r| r.registrant.clone()).unwrap_or_default(),
        storage_note: r.map(|r| r.storage_note.clone()).unwrap_or_default(),
        witness_required: r.is_none_or(|r| r.waste_witness_required),
        inventory: inventory_words(&o.inventory_status),
        draws: o
            .open_draws
            .iter()
            .map(|d| DrawRow {
                administered: d.administered,
                draw: d.draw.clone(),
                product: d.product_name.clone(),
                lot: d.lot.clone(),
                drawn_at: when(d.drawn_at),
                remainder: format!("{} mg", d.remainder),
            })
            .collect(),
        discrepancies: open.iter().map(discrepancy_row).collect(),
        count_rows,
        products: reg.products.iter().map(|p| ProductChoice { id: p.id.to_string(), name: p.name.clone() }).collect(),
        inventories: o
            .inventories
            .iter()
            .take(10)
            .map(|i| (i.taken_on.clone(), i.kind.clone(), i.taken_at.replace('_', " "), i.lines))
            .collect(),
        balances: o.balances,
        can_record: allows(Some(user.role), Action::RecordControlledSubstances),
        can_manage: allows(Some(user.role), Action::ManageControlledSubstanceRegistry),
        notice,
        error,
    })
}

/// `GET /cs`: a location's stock and what is due.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<CsQuery>,
) -> PageResult<Html<String>> {
    let location = chosen(&state, &user, q.location.as_deref()).await?;
    let notice = q.saved.as_deref().map(|s| match s {
        "receipt" => "The receipt is recorded.".to_owned(),
        "count" => "The count is recorded and signed by you.".to_owned(),
        "count-discrepancy" => {
            "The count is recorded. It differs from the ledger: a discrepancy is open below.".to_owned()
        }
        "destruction" => "The destruction is recorded with both witnesses (DEA Form 41).".to_owned(),
        "waste" => "The waste is recorded with its witness.".to_owned(),
        "administration" => "What was given is recorded; waste what is left with a witness.".to_owned(),
        "transfer" => "The transfer is recorded with its document.".to_owned(),
        _ => "Saved.".to_owned(),
    });
    cs_page(&state, &user, location, notice, None).await
}

/// Runs a form's use case: on success a redirect to the location's page; on a refusal the page
/// again (422) with the message at the form.
async fn outcome<T>(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    form: &str,
    result: Result<T, AppError>,
    saved: impl FnOnce(&T) -> &'static str,
) -> PageResult<Response> {
    match result {
        Ok(v) => Ok(Redirect::to(&format!("/cs?location={location}&saved={}", saved(&v))).into_response()),
        Err(e) if is_shown(&e) => {
            let page = cs_page(state, user, location, None, Some(form_error(form, &e))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /cs/receipts`.
pub async fn receive(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let location = uuid_of(&p, "location")?;
    let result = async {
        let input = ReceiptInput {
            stock: Stock { location, product: uuid_of(&p, "product")?, lot: get(&p, "lot").to_owned() },
            expiry: date(&p, "expiry")?,
            supplier: RegistrantInput {
                name: get(&p, "supplier_name").to_owned(),
                address: get(&p, "supplier_address").to_owned(),
                dea_number: get(&p, "supplier_dea_number").to_owned(),
            },
            containers: number(&p, "containers")?,
            invoice: opt(&p, "invoice"),
            received_at: None,
        };
        transactions::receive(&state, &user, input).await
    }
    .await;
    outcome(&state, &user, location, "receipt", result, |_| "receipt").await
}

/// `POST /cs/counts`: every lot line of the form, signed by the person taking it.
pub async fn count(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let location = uuid_of(&p, "location")?;
    let result = async {
        let reg = registry::registry(&state, &user).await?;
        let mut lines = Vec::new();
        for i in 0..500usize {
            let product_raw = get(&p, &format!("product_{i}"));
            if product_raw.is_empty() {
                break;
            }
            if get(&p, &format!("skip_{i}")) == "on" {
                continue;
            }
            let product: Uuid =
                product_raw.parse().map_err(|_| kapstone_domain::FieldError::new("product", "unknown product"))?;
            let form = form_of(&reg, product)?;
            let full: u32 = get(&p, &format!("full_{i}")).parse().map_err(|_| {
                kapstone_domain::FieldError::new("full_containers", "give the number of full containers")
            })?;
            let opened = measure_in(&form, "opened", get(&p, &format!("opened_{i}")))?
                .map(|measure| kapstone_domain::ledger::OpenedContainer {
                    measure,
                    estimated: get(&p, &format!("estimated_{i}")) == "on",
                })
                .into_iter()
                .collect();
            lines.push(CountLine {
                product: CsProductId::from_uuid(product),
                lot: LotNumber::parse("lot", get(&p, &format!("lot_{i}")))?,
                full_containers: full,
                opened,
            });
        }
        let kind = match get(&p, "kind") {
            "initial" => InventoryKind::Initial,
            "biennial" => InventoryKind::Biennial,
            _ => InventoryKind::Count,
        };
        let taken_at = if get(&p, "taken_at") == "opening_of_business" {
            TakenAt::OpeningOfBusiness
        } else {
            TakenAt::CloseOfBusiness
        };
        transactions::count(&state, &user, CountInput { location, kind, taken_at, lines, counted_at: None }).await
    }
    .await;
    outcome(&state, &user, location, "count", result, |r| {
        if r.discrepancies.is_empty() { "count" } else { "count-discrepancy" }
    })
    .await
}

/// `POST /cs/destructions`: two witnesses sign in on the spot.
pub async fn destroy(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let location = uuid_of(&p, "location")?;
    let result = async {
        let product = uuid_of(&p, "product")?;
        let reg = registry::registry(&state, &user).await?;
        let form = form_of(&reg, product)?;
        let reason = match get(&p, "reason") {
            "expired" => DestructionReason::Expired,
            "damaged" => DestructionReason::Damaged,
            _ => DestructionReason::Other(get(&p, "reason_other").to_owned()),
        };
        let input = DestructionInput {
            stock: Stock { location, product, lot: get(&p, "lot").to_owned() },
            reason,
            full_containers: if get(&p, "full_containers").is_empty() { 0 } else { number(&p, "full_containers")? },
            partial: measure_in(&form, "partial", get(&p, "partial"))?,
            method: get(&p, "method").to_owned(),
            witnesses: vec![witness(&p, "w1"), witness(&p, "w2")]
                .into_iter()
                .filter(|w| !w.email.is_empty() || !w.password.is_empty())
                .collect(),
            destroyed_at: None,
        };
        transactions::destroy(&state, &user, input).await
    }
    .await;
    outcome(&state, &user, location, "destruction", result, |_| "destruction").await
}

/// `POST /cs/transfers`: a return to the supplier or a transfer to a reverse distributor or
/// another registrant, with its document.
pub async fn transfer(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let location = uuid_of(&p, "location")?;
    let result = async {
        let product = uuid_of(&p, "product")?;
        let reg = registry::registry(&state, &user).await?;
        let form = form_of(&reg, product)?;
        let full: u32 = if get(&p, "full_containers").is_empty() { 0 } else { number(&p, "full_containers")? };
        let measure = match (full, measure_in(&form, "partial", get(&p, "partial"))?) {
            (0, Some(m)) => m,
            (n, None) if n > 0 => Measure::Containers(n),
            (_, Some(_)) => {
                return Err(kapstone_domain::FieldError::new(
                    "partial",
                    "send full containers and an opened one as two records",
                )
                .into());
            }
            _ => return Err(kapstone_domain::FieldError::new("full_containers", "give the quantity sent").into()),
        };
        let purpose = match get(&p, "purpose") {
            "return_to_supplier" => kapstone_domain::ledger::TransferPurpose::ReturnToSupplier,
            "other_registrant" => kapstone_domain::ledger::TransferPurpose::OtherRegistrant,
            _ => kapstone_domain::ledger::TransferPurpose::ReverseDistributor,
        };
        let input = transactions::TransferInput {
            stock: Stock { location, product, lot: get(&p, "lot").to_owned() },
            purpose,
            recipient: RegistrantInput {
                name: get(&p, "recipient_name").to_owned(),
                address: get(&p, "recipient_address").to_owned(),
                dea_number: get(&p, "recipient_dea_number").to_owned(),
            },
            measure,
            document: get(&p, "document").to_owned(),
            sent_at: None,
        };
        transactions::transfer(&state, &user, input).await
    }
    .await;
    outcome(&state, &user, location, "transfer", result, |_| "transfer").await
}

/// `POST /cs/draws/{id}/waste`: what is left of a session's draw, with the witness.
pub async fn waste(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let draw: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let p = pairs(&body)?;
    let location = uuid_of(&p, "location")?;
    let w = witness(&p, "witness");
    let input = WasteInput {
        method: get(&p, "method").to_owned(),
        witness: (!w.email.is_empty() || !w.password.is_empty()).then_some(w),
        measure: None,
    };
    let result = transactions::waste(&state, &user, draw, input).await;
    outcome(&state, &user, location, &format!("waste-{draw}"), result, |_| "waste").await
}

/// `POST /cs/draws/{id}/administration`: what was given from a draw the session could not record.
pub async fn administer(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let draw: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let p = pairs(&body)?;
    let location = uuid_of(&p, "location")?;
    let input = transactions::AdministrationInput { amount_mg: get(&p, "amount_mg").to_owned() };
    let result = transactions::administer(&state, &user, draw, input).await;
    outcome(&state, &user, location, &format!("given-{draw}"), result, |_| "administration").await
}

// ---------------------------------------------------------------------------------------------
// The transactions report
// ---------------------------------------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
pub struct ReportQuery {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// The most entries the printable page shows; beyond it the page says so and the CSV has them all.
const PRINT_CAP: usize = 10_000;

#[derive(Template)]
#[template(path = "cs_report.html")]
struct ReportPage {
    layout: Layout,
    location: String,
    location_name: String,
    dea_number: String,
    from: String,
    to: String,
    kind: String,
    kinds: Vec<String>,
    items: Vec<EntryView>,
    truncated: bool,
    error: Option<FormError>,
    printed_at: String,
}

async fn report_items(
    state: &AppState,
    user: &CurrentUser,
    q: &ReportQuery,
    cap: usize,
) -> Result<(Uuid, String, String, Vec<EntryView>, bool), AppError> {
    let location = chosen(state, user, q.location.as_deref()).await?;
    let today = crate::app::ledger::place(state, user, location).await?.date_of(kapstone_domain::UtcTs::now());
    let from = q
        .from
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| today.checked_sub(jiff::ToSpan::days(30)).unwrap_or(today).to_string());
    let to = q.to.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| today.to_string());
    let f = crate::api::ledger::ledger_filter(state, user, location, Some(&from), Some(&to), q.kind.as_deref()).await?;
    // The whole range, up to `cap` entries (the CSV has no cap; the printed page says when it is
    // cut short, never silently).
    let (items, truncated) = reports::ledger_report(state, user, location, f, cap).await?;
    Ok((location, from, to, items, truncated))
}

/// `GET /cs/report`: a location's transactions for a date range, printable.
pub async fn report(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ReportQuery>,
) -> PageResult<Response> {
    let kinds = kapstone_domain::ledger::EntryKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    let (items, error, location, from, to, truncated) = match report_items(&state, &user, &q, PRINT_CAP).await {
        Ok((location, from, to, items, truncated)) => (items, None, location, from, to, truncated),
        Err(e) if is_shown(&e) => {
            let location = chosen(&state, &user, q.location.as_deref()).await?;
            (
                Vec::new(),
                Some(form_error("report", &e)),
                location,
                q.from.clone().unwrap_or_default(),
                q.to.clone().unwrap_or_default(),
                false,
            )
        }
        Err(e) => return Err(e.into()),
    };
    let reg = registry::registry(&state, &user).await?;
    let entry = reg.locations.iter().find(|l| l.location_id == location);
    let page = render(&ReportPage {
        layout: Layout::for_user("Controlled-substance transactions", &user, "/cs"),
        location: location.to_string(),
        location_name: entry.map(|l| l.name.clone()).unwrap_or_default(),
        dea_number: entry
            .and_then(|l| l.registration.as_ref())
            .map(|r| r.registration.dea_number.to_string())
            .unwrap_or_default(),
        from,
        to,
        kind: q.kind.clone().unwrap_or_default(),
        kinds,
        items,
        truncated,
        printed_at: when(kapstone_domain::UtcTs::now()),
        error: error.clone(),
    })?;
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, page).into_response())
}

/// `GET /cs/report.csv`: the same transactions as CSV.
pub async fn report_csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ReportQuery>,
) -> PageResult<Response> {
    crate::app::reauth::before_export(&state, &user).await?;
    let (location, from, to, items, _) = report_items(&state, &user, &q, usize::MAX).await?;
    let name = format!("cs-ledger-{location}-{from}-to-{to}.csv");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        reports::csv(&items),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// A discrepancy
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "cs_discrepancy.html")]
struct DiscrepancyPage {
    layout: Layout,
    d: DiscrepancyView,
    row: DiscrepancyRow,
    judgement: Option<String>,
    notes: Vec<(String, String, String)>,
    can_decide: bool,
    can_report: bool,
    can_investigate: bool,
    today: String,
    error: Option<FormError>,
}

impl DiscrepancyPage {
    fn err(&self, form: &str) -> Option<&FormError> {
        self.error.as_ref().filter(|e| e.form == form)
    }
}

async fn discrepancy_page(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    error: Option<FormError>,
) -> PageResult<Html<String>> {
    use kapstone_domain::ledger::LedgerAction as L;
    use kapstone_domain::ledger::ledger_allows;
    let d = discrepancies::show(state, user, id).await?;
    let judgement = d.discrepancy.judgement.as_ref().map(|j| match j {
        Judgement::NotSignificant { reason, by, .. } => {
            format!("Not a theft or significant loss — {reason} ({})", by.name)
        }
        Judgement::TheftOrLoss { what, discovered_on, reason, by, .. } => format!(
            "{} discovered on {discovered_on} — {reason} ({})",
            match what {
                LossKind::Theft => "Theft",
                LossKind::SignificantLoss => "Significant loss",
            },
            by.name
        ),
    });
    let notes = d.discrepancy.notes.iter().map(|n| (when(n.at), n.by.name.clone(), n.text.clone())).collect();
    let today = crate::app::ledger::place(state, user, d.location).await?.date_of(kapstone_domain::UtcTs::now());
    render(&DiscrepancyPage {
        layout: Layout::for_user("Discrepancy", user, "/cs"),
        row: discrepancy_row(&d),
        judgement,
        notes,
        can_decide: ledger_allows(user.role, L::DecideDiscrepancy),
        can_report: ledger_allows(user.role, L::RecordLossReport),
        can_investigate: ledger_allows(user.role, L::Investigate),
        today: today.to_string(),
        d,
        error,
    })
}

/// `GET /cs/discrepancies/{id}`.
pub async fn discrepancy(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    discrepancy_page(&state, &user, id, None).await
}

/// `POST /cs/discrepancies/{id}`: one step, named by `step`.
pub async fn discrepancy_step(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let p = pairs(&body)?;
    let step = get(&p, "step").to_owned();
    let factors = || -> Vec<SignificanceFactor> {
        p.iter()
            .filter(|(k, _)| k == "factor")
            .filter_map(|(_, v)| serde_json::from_value(serde_json::Value::String(v.clone())).ok())
            .collect()
    };
    let result = async {
        let event = match step.as_str() {
            "note" => DiscrepancyEvent::NoteAdded { text: get(&p, "text").to_owned() },
            "not_significant" => {
                DiscrepancyEvent::JudgedNotSignificant { reason: get(&p, "reason").to_owned(), factors: factors() }
            }
            "theft_or_loss" => DiscrepancyEvent::JudgedTheftOrLoss {
                what: if get(&p, "what") == "theft" { LossKind::Theft } else { LossKind::SignificantLoss },
                discovered_on: date(&p, "discovered_on")?,
                reason: get(&p, "reason").to_owned(),
                factors: factors(),
            },
            "notice" => DiscrepancyEvent::NoticeSent { on: date(&p, "on")?, to: get(&p, "to").to_owned() },
            "form106" => {
                DiscrepancyEvent::Form106Submitted { on: date(&p, "on")?, reference: get(&p, "reference").to_owned() }
            }
            "close" => DiscrepancyEvent::Closed { summary: get(&p, "summary").to_owned() },
            _ => return Err(kapstone_domain::FieldError::new("step", "unknown step").into()),
        };
        discrepancies::record(&state, &user, id, event).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/cs/discrepancies/{id}")).into_response()),
        Err(e) if is_shown(&e) => {
            let page = discrepancy_page(&state, &user, id, Some(form_error(&step, &e))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "cs_registry.html")]
struct RegistryPage {
    layout: Layout,
    r: registry::Registry,
    error: Option<FormError>,
    notice: Option<String>,
}

impl RegistryPage {
    fn err(&self, form: &str) -> Option<&FormError> {
        self.error.as_ref().filter(|e| e.form == form)
    }
}

async fn registry_page(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<String>,
    error: Option<FormError>,
) -> PageResult<Html<String>> {
    let r = registry::registry(state, user).await?;
    crate::app::ledger::audit_read(state, user, None, "registry".into()).await?;
    render(&RegistryPage { layout: Layout::for_user("Controlled-substance registry", user, "/cs"), r, error, notice })
}

#[derive(serde::Deserialize, Default)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /cs/registry`.
pub async fn registry_show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<SavedQuery>,
) -> PageResult<Html<String>> {
    registry_page(&state, &user, q.saved.map(|_| "Saved.".to_owned()), None).await
}

async fn registry_outcome<T>(
    state: &AppState,
    user: &CurrentUser,
    form: &str,
    r: Result<T, AppError>,
) -> PageResult<Response> {
    match r {
        Ok(_) => Ok(Redirect::to("/cs/registry?saved=1").into_response()),
        Err(e) if is_shown(&e) => {
            let page = registry_page(state, user, None, Some(form_error(form, &e))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /cs/registry/locations/{id}`: the location's DEA registration and settings.
pub async fn registry_location(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let location: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let p = pairs(&body)?;
    let result = async {
        let retention: u16 = number(&p, "retention_years")?;
        let input = RegistrationInput {
            dea_number: get(&p, "dea_number").to_owned(),
            registrant: get(&p, "registrant").to_owned(),
            address: get(&p, "address").to_owned(),
            phone: get(&p, "phone").to_owned(),
            contact: get(&p, "contact").to_owned(),
            storage_note: get(&p, "storage_note").to_owned(),
            waste_witness_required: Some(get(&p, "waste_witness_required") == "on"),
            retention_years: Some(retention),
            holidays: None,
        };
        registry::save_registration(&state, &user, location, input).await
    }
    .await;
    registry_outcome(&state, &user, &format!("location-{location}"), result).await
}

/// `POST /cs/registry/lots`: a lot on the shelf, before the initial inventory.
pub async fn registry_lot(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let result = async {
        let input = registry::LotInput {
            product: uuid_of(&p, "product")?,
            lot: get(&p, "lot").to_owned(),
            expiry: date(&p, "expiry")?,
        };
        registry::add_lot(&state, &user, input).await
    }
    .await;
    registry_outcome(&state, &user, "lot", result).await
}

/// `POST /cs/registry/products`.
pub async fn registry_product(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let result = async {
        let mg = |k: &'static str| kapstone_domain::ledger::Micrograms::parse_mg(k, get(&p, k));
        let form = match get(&p, "form") {
            "solution" => ProductForm::Solution {
                strength_ug_per_ml: mg("strength_mg_per_ml")?,
                ml_per_container: Microlitres::parse_ml("ml_per_container", get(&p, "ml_per_container"))?,
            },
            "device_kit" => ProductForm::DeviceKit {
                devices_per_container: number(&p, "units_per_container")?,
                ug_per_device: mg("mg_per_unit")?,
            },
            "tablets" => ProductForm::Tablets {
                tablets_per_container: number(&p, "units_per_container")?,
                ug_per_tablet: mg("mg_per_unit")?,
            },
            _ => return Err(kapstone_domain::FieldError::new("form", "choose the product's form").into()),
        };
        let substance = if get(&p, "substance") == "esketamine" { Substance::Esketamine } else { Substance::Ketamine };
        registry::add_product(
            &state,
            &user,
            ProductInput { name: get(&p, "name").to_owned(), substance, ndc: get(&p, "ndc").to_owned(), form },
        )
        .await
    }
    .await;
    registry_outcome(&state, &user, "product", result).await
}

// ---------------------------------------------------------------------------------------------
// A lot's running balance
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "cs_lot.html")]
struct LotPage {
    layout: Layout,
    location: String,
    r: reports::LotReport,
}

#[derive(serde::Deserialize, Default)]
pub struct LotQuery {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    lot: Option<String>,
}

/// `GET /cs/lot?location=&product=&lot=`.
pub async fn lot(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<LotQuery>,
) -> PageResult<Html<String>> {
    let location = chosen(&state, &user, q.location.as_deref()).await?;
    let product: Uuid = q.product.as_deref().unwrap_or_default().parse().map_err(|_| AppError::NotFound)?;
    let r = reports::lot_report(&state, &user, location, product, q.lot.as_deref().unwrap_or_default()).await?;
    render(&LotPage { layout: Layout::for_user("Lot", &user, "/cs"), location: location.to_string(), r })
}
