//! Reading the ledger: balances, the entries of a date range, the running balance of a lot, the
//! dispensing log by patient, inventories and their status, a location's overview. Every read is
//! audited; reports name patients (the regulation requires it), logs never do.

use std::collections::BTreeMap;

use kapstone_domain::FieldError;
use kapstone_domain::UtcTs;
use kapstone_domain::ids::CsProductId;
use kapstone_domain::ledger::balance::{Reconciliation, RunningLine, running_balance};
use kapstone_domain::ledger::chain::StoredLedgerEntry;
use kapstone_domain::ledger::inventory::{InventoryStatus, inventory_status};
use kapstone_domain::ledger::reports::{TransactionLine, transaction_line};
use kapstone_domain::ledger::{Bucket, CsProduct, LedgerEntry, Lot, LotNumber, Micrograms, OpenDraw};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use kapstone_store::ledger::{self as store, EntryFilter};
use serde::Serialize;
use uuid::Uuid;

use super::transactions::Found;
use super::{Place, Registered, audit_read, entry_of, lot_of, place, product_of, registered};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// The most entries one page of the ledger returns; `next_after_seq` continues.
pub const PAGE: i64 = 1000;

/// How far back the overview looks for draws still in use.
pub const OPEN_DRAW_DAYS: i64 = 90;

pub(crate) async fn entry_by_id(state: &AppState, user: &CurrentUser, entry: Uuid) -> Result<Option<Found>, AppError> {
    match store::entry_by_id(&state.db, user.clinic.as_uuid(), entry).await? {
        Some(s) => Ok(Some(Found::of(&s)?)),
        None => Ok(None),
    }
}

/// The clinic's products and lots, by id and (product, lot).
pub struct Catalogue {
    pub products: BTreeMap<Uuid, CsProduct>,
    pub lots: BTreeMap<(Uuid, String), Lot>,
}

impl Catalogue {
    pub async fn load(state: &AppState, user: &CurrentUser) -> Result<Self, AppError> {
        let clinic = user.clinic.as_uuid();
        let mut products = BTreeMap::new();
        for p in store::products(&state.db, clinic).await? {
            products.insert(p.id, product_of(&p)?);
        }
        let mut lots = BTreeMap::new();
        for l in store::lots(&state.db, clinic).await? {
            lots.insert((l.product_id, l.number.clone()), lot_of(&l)?);
        }
        Ok(Self { products, lots })
    }

    fn product(&self, id: CsProductId) -> Result<&CsProduct, AppError> {
        self.products.get(&id.as_uuid()).ok_or_else(|| AppError::Internal(anyhow::anyhow!("entry of unknown product")))
    }
}

/// One lot's balance.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BalanceLine {
    pub product: Uuid,
    pub product_name: String,
    pub ndc: String,
    pub lot: String,
    pub expiry: Option<jiff::civil::Date>,
    pub expired: bool,
    pub on_hand_mg: f64,
    /// The exact amount as a decimal string (no floating point).
    pub on_hand: String,
}

/// A location's balance per product and lot (the sums the verifier re-derives).
pub async fn balance(state: &AppState, user: &CurrentUser, location: Uuid) -> Result<Vec<BalanceLine>, AppError> {
    let place = place(state, user, location).await?;
    let lines = balance_lines(state, user, &place).await?;
    audit_read(state, user, Some(location), format!("balance: {} lots", lines.len())).await?;
    Ok(lines)
}

async fn balance_lines(state: &AppState, user: &CurrentUser, place: &Place) -> Result<Vec<BalanceLine>, AppError> {
    let cat = Catalogue::load(state, user).await?;
    let today = place.date_of(UtcTs::now());
    let mut out = Vec::new();
    for (product, lot, ug) in store::balances(&state.db, user.clinic.as_uuid(), place.id).await? {
        let p = cat.products.get(&product);
        let l = cat.lots.get(&(product, lot.clone()));
        let amount = Micrograms::from_ug(ug);
        out.push(BalanceLine {
            product,
            product_name: p.map(|p| p.name.clone()).unwrap_or_default(),
            ndc: p.map(|p| p.ndc.to_string()).unwrap_or_default(),
            lot,
            expiry: l.map(|l| l.expiry),
            expired: l.is_some_and(|l| l.is_expired_on(today)),
            on_hand_mg: amount.mg(),
            on_hand: amount.mg_text(),
        });
    }
    out.sort_by(|a, b| (&a.product_name, a.expiry, &a.lot).cmp(&(&b.product_name, b.expiry, &b.lot)));
    Ok(out)
}

/// An entry as the ledger report shows it: the transaction line (names, quantities) and its
/// place in the chain.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EntryView {
    pub seq: i64,
    pub id: String,
    #[schemars(with = "kapstone_domain::ledger::EntryKind")]
    pub kind: String,
    pub occurred_at: UtcTs,
    pub recorded_at: UtcTs,
    pub product: String,
    pub lot: String,
    pub change_mg: f64,
    #[serde(skip)]
    pub change_ug: i64,
    pub line: TransactionLine,
    /// The entry as recorded (the domain's JSON).
    pub entry: LedgerEntry,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LedgerPage {
    pub location: Uuid,
    pub items: Vec<EntryView>,
    /// More entries match: ask again with `after_seq` set to this.
    pub next_after_seq: Option<i64>,
}

fn views(cat: &Catalogue, stored: Vec<StoredLedgerEntry>) -> Result<Vec<EntryView>, AppError> {
    stored
        .into_iter()
        .map(|s| {
            let entry = entry_of(&s)?;
            let line = transaction_line(&entry, cat.product(entry.product)?);
            Ok(EntryView {
                seq: s.seq,
                id: s.entry_id,
                kind: s.kind,
                occurred_at: s.occurred_at,
                recorded_at: s.recorded_at,
                product: s.product_id,
                lot: s.lot,
                change_mg: Micrograms::from_ug(s.change_ug).mg(),
                change_ug: s.change_ug,
                line,
                entry,
            })
        })
        .collect()
}

/// A location's entries matching `filter` in chain order, a page at a time.
pub async fn ledger(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    filter: EntryFilter,
    limit: i64,
) -> Result<LedgerPage, AppError> {
    place(state, user, location).await?;
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && to <= from
    {
        return Err(FieldError::new("to", "the end of the range comes after its start").into());
    }
    let limit = limit.clamp(1, PAGE);
    let cat = Catalogue::load(state, user).await?;
    let mut stored = store::entries(&state.db, user.clinic.as_uuid(), location, &filter, limit + 1).await?;
    let more = i64::try_from(stored.len()).unwrap_or(i64::MAX) > limit;
    stored.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_after_seq = if more { stored.last().map(|s| s.seq) } else { None };
    let items = views(&cat, stored)?;
    let mut what = format!("ledger: {} entries", items.len());
    if let Some(p) = filter.patient {
        what.push_str(&format!(" of patient {p}"));
    }
    audit_read(state, user, Some(location), what).await?;
    Ok(LedgerPage { location, items, next_after_seq })
}

/// Entries read per query by [`ledger_report`].
const REPORT_READ: usize = 10_000;

/// Every entry of a location matching `filter`, in chain order, up to `cap` (the printable report
/// and its CSV): read in large pages with the catalogue loaded once and one audit event for the
/// whole report. Each page is one indexed range read, so a month of a busy location is read once,
/// not once per thousand entries. Returns the entries and whether more matched than `cap`.
pub async fn ledger_report(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    filter: EntryFilter,
    cap: usize,
) -> Result<(Vec<EntryView>, bool), AppError> {
    place(state, user, location).await?;
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && to <= from
    {
        return Err(FieldError::new("to", "the end of the range comes after its start").into());
    }
    let cat = Catalogue::load(state, user).await?;
    let mut f = filter;
    let mut items = Vec::new();
    let truncated = loop {
        let want = REPORT_READ.min(cap.saturating_sub(items.len())).max(1);
        let limit = i64::try_from(want + 1).unwrap_or(i64::MAX);
        let mut stored = store::entries(&state.db, user.clinic.as_uuid(), location, &f, limit).await?;
        let more = stored.len() > want;
        stored.truncate(want);
        f.after_seq = stored.last().map(|s| s.seq);
        items.extend(views(&cat, stored)?);
        if !more {
            break false;
        }
        if items.len() >= cap {
            break true;
        }
    };
    audit_read(state, user, Some(location), format!("ledger report: {} entries", items.len())).await?;
    Ok((items, truncated))
}

/// A lot's running balance with its reconciliation since the last count.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LotReport {
    pub product: CsProduct,
    pub lot: Lot,
    pub lines: Vec<RunningLine>,
    pub reconciliation: Reconciliation,
    pub open_draws: Vec<OpenDraw>,
    pub on_hand_mg: f64,
}

pub async fn lot_report(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    product: Uuid,
    lot: &str,
) -> Result<LotReport, AppError> {
    place(state, user, location).await?;
    let number = LotNumber::parse("lot", lot)?;
    let cat = Catalogue::load(state, user).await?;
    let Some(p) = cat.products.get(&product).cloned() else { return Err(AppError::NotFound) };
    let Some(l) = cat.lots.get(&(product, number.to_string())).cloned() else { return Err(AppError::NotFound) };
    let filter = EntryFilter { product: Some(product), lot: Some(number.to_string()), ..EntryFilter::default() };
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let f = EntryFilter { after_seq: after, ..filter.clone() };
        let batch = store::entries(&state.db, user.clinic.as_uuid(), location, &f, 5000).await?;
        let Some(last) = batch.last().map(|s| s.seq) else { break };
        for s in &batch {
            entries.push(entry_of(s)?);
        }
        after = Some(last);
    }
    let bucket = Bucket::fold(&entries);
    audit_read(state, user, Some(location), format!("running balance of lot {number}: {} entries", entries.len()))
        .await?;
    Ok(LotReport {
        on_hand_mg: bucket.balance().mg(),
        open_draws: bucket.open_draws(),
        reconciliation: Reconciliation::of(&entries),
        lines: running_balance(&entries),
        product: p,
        lot: l,
    })
}

/// A page of the dispensing log of one patient (`filter.patient`) across the clinic's locations,
/// oldest first by when each entry happened, after `after`: the entries, and the key to continue after.
pub async fn dispensing_log(
    state: &AppState,
    user: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<(Vec<EntryView>, Option<TimeKey>), AppError> {
    let patient = filter.patient.ok_or(AppError::NotFound)?;
    let cat = Catalogue::load(state, user).await?;
    let after = TimeKey::oldest_first(after);
    let mut rows =
        store::patient_entries_page(&state.db, &Page { clinic: user.clinic, filter, after, limit: limit + 1 }).await?;
    let next = keyset::cut(&mut rows, limit, |e| TimeKey::new(e.occurred_at, e.entry_id.parse().unwrap_or_default()));
    let out = views(&cat, rows)?;
    let mut e = user.event(
        kapstone_domain::audit::AuditAction::LedgerRead,
        "patient",
        kapstone_domain::audit::Outcome::Success,
    );
    e.entity_id = Some(patient.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(format!("dispensing log: {} entries", out.len()));
    state.read_audit.record(e).await?;
    Ok((out, next))
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InventoryView {
    pub id: Uuid,
    pub kind: String,
    pub taken_at: String,
    pub taken_on: String,
    pub occurred_at: UtcTs,
    pub taken_by: Uuid,
    pub lines: i64,
}

/// Where a location stands: registration, balances, draws in use, inventories and their status,
/// open discrepancies. The ledger's home page.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Overview {
    pub location: Uuid,
    pub location_name: String,
    pub registration: Option<RegisteredView>,
    pub balances: Vec<BalanceLine>,
    pub open_draws: Vec<OpenDrawView>,
    pub inventory_status: InventoryStatus,
    pub inventories: Vec<InventoryView>,
    pub open_discrepancies: usize,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RegisteredView {
    pub dea_number: String,
    pub registrant: String,
    pub storage_note: String,
    pub waste_witness_required: bool,
    pub retention_years: u16,
    pub settings_version: i64,
}

impl From<&Registered> for RegisteredView {
    fn from(r: &Registered) -> Self {
        Self {
            dea_number: r.registration.dea_number.to_string(),
            registrant: r.registration.registrant.clone(),
            storage_note: r.registration.storage_note.clone(),
            waste_witness_required: r.settings.waste_witness_required,
            retention_years: r.settings.retention.years(),
            settings_version: r.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OpenDrawView {
    pub draw: String,
    /// What was given is recorded: what is left waits to be wasted. Otherwise the draw waits for
    /// what was given (a session stopped before its administration ended).
    pub administered: bool,
    pub session: String,
    pub product_name: String,
    pub lot: String,
    pub drawn_at: UtcTs,
    pub remainder_mg: f64,
    pub remainder: String,
}

pub async fn overview(state: &AppState, user: &CurrentUser, location: Uuid) -> Result<Overview, AppError> {
    let place = place(state, user, location).await?;
    let clinic = user.clinic.as_uuid();
    let registration = match store::registration(&state.db, clinic, location).await? {
        Some(r) => Some(RegisteredView::from(&registered(&r)?)),
        None => None,
    };
    let balances = balance_lines(state, user, &place).await?;
    // Draws in use: each lot's entries of the last OPEN_DRAW_DAYS folded (a dose's draw is settled
    // the same day; an older one still open shows on its lot's running balance).
    let cat = Catalogue::load(state, user).await?;
    let mut open_draws = Vec::new();
    let since = UtcTs::from_unix_micros(UtcTs::now().unix_micros() - OPEN_DRAW_DAYS * 86_400_000_000);
    // One pass over the location's recent entries (the time index), grouped by lot.
    let mut by_lot: BTreeMap<(Uuid, String), Vec<LedgerEntry>> = BTreeMap::new();
    let mut after = None;
    loop {
        let f = EntryFilter { from: Some(since), after_seq: after, ..EntryFilter::default() };
        let batch = store::entries(&state.db, clinic, location, &f, 5000).await?;
        let Some(last) = batch.last().map(|s| s.seq) else { break };
        for s in &batch {
            let e = entry_of(s)?;
            by_lot.entry((e.product.as_uuid(), e.lot.to_string())).or_default().push(e);
        }
        after = Some(last);
    }
    for ((product, lot), entries) in &by_lot {
        for d in Bucket::fold(entries).open_draws() {
            let given = entries.iter().filter_map(|e| match &e.detail {
                kapstone_domain::ledger::EntryDetail::Administration(a) if a.draw == d.draw => Some(e.id),
                _ => None,
            });
            let administered = given.into_iter().any(|g| {
                !entries
                    .iter()
                    .any(|e| matches!(&e.detail, kapstone_domain::ledger::EntryDetail::Reversal(r) if r.reverses == g))
            });
            open_draws.push(OpenDrawView {
                administered,
                draw: d.draw.to_string(),
                session: d.session.to_string(),
                product_name: cat.products.get(product).map(|p| p.name.clone()).unwrap_or_default(),
                lot: lot.clone(),
                drawn_at: d.drawn_at,
                remainder_mg: d.remainder.mg(),
                remainder: d.remainder.mg_text(),
            });
        }
    }
    let inventories: Vec<InventoryView> = store::inventories(&state.db, clinic, location)
        .await?
        .into_iter()
        .map(|i| InventoryView {
            id: i.id,
            kind: i.kind,
            taken_at: i.taken_at,
            taken_on: i.taken_on,
            occurred_at: i.occurred_at.0,
            taken_by: i.taken_by,
            lines: i.lines,
        })
        .collect();
    let last_full = inventories
        .iter()
        .filter(|i| i.kind == "initial" || i.kind == "biennial")
        .filter_map(|i| i.taken_on.parse::<jiff::civil::Date>().ok())
        .max();
    let open_discrepancies =
        store::discrepancies(&state.db, clinic, true).await?.iter().filter(|d| d.location_id == location).count();
    audit_read(state, user, Some(location), format!("overview: {} lots", balances.len())).await?;
    Ok(Overview {
        location,
        location_name: place.name.clone(),
        registration,
        inventory_status: inventory_status(last_full, place.date_of(UtcTs::now())),
        balances,
        open_draws,
        inventories,
        open_discrepancies,
    })
}

/// The transactions of a date range as CSV (one line per entry; patient name and address on
/// administrations, as the record requires).
pub fn csv(items: &[EntryView]) -> String {
    let mut out = String::from(
        "seq,occurred_at,kind,product,ndc,lot,quantity,amount_mg,change_mg,recorded_by,administered_by,witnesses,\
         patient_name,patient_address,counterparty,note\r\n",
    );
    for v in items {
        let l = &v.line;
        let fields = [
            v.seq.to_string(),
            v.occurred_at.rfc3339(),
            l.kind.to_owned(),
            l.product.clone(),
            l.ndc.to_string(),
            l.lot.to_string(),
            l.quantity.clone(),
            l.amount_mg.clone(),
            Micrograms::from_ug(v.change_ug).mg_text(),
            l.recorded_by.clone(),
            l.administered_by.clone().unwrap_or_default(),
            l.witnesses.join("; "),
            l.patient_name.clone().unwrap_or_default(),
            l.patient_address.clone().unwrap_or_default(),
            l.counterparty.clone().unwrap_or_default(),
            l.note.clone().unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Quotes a CSV field, and defuses a leading `=`, `+`, `-` or `@` so a spreadsheet does not run
/// it as a formula.
fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) { format!("\"{}\"", guarded.replace('"', "\"\"")) } else { guarded }
}

/// A destruction's DEA Form 41 content (not found for any other kind of entry).
pub async fn form_41(
    state: &AppState,
    user: &CurrentUser,
    entry: Uuid,
) -> Result<kapstone_domain::ledger::reports::Form41, AppError> {
    let clinic = user.clinic.as_uuid();
    let s = store::entry_by_id(&state.db, clinic, entry).await?.ok_or(AppError::NotFound)?;
    let e = entry_of(&s)?;
    let cat = Catalogue::load(state, user).await?;
    let reg = store::registration(&state.db, clinic, e.location.as_uuid()).await?.ok_or(AppError::NotFound)?;
    let reg = registered(&reg)?;
    let form = kapstone_domain::ledger::reports::form_41(&e, cat.product(e.product)?, &reg.registration)
        .ok_or(AppError::NotFound)?;
    audit_read(state, user, Some(e.location.as_uuid()), format!("Form 41 of entry {entry}")).await?;
    Ok(form)
}

/// What the controlled-substance ledger asks of staff today, for the home page: inventories due
/// or overdue at each registered location, and every open discrepancy with its deadlines (shown
/// until it is closed). `(href, text)` pairs; audited as one read when there is any.
pub async fn due(state: &AppState, user: &CurrentUser) -> Result<Vec<(String, String)>, AppError> {
    let clinic = user.clinic.as_uuid();
    let regs = store::registrations(&state.db, clinic).await?;
    let mut out = Vec::new();
    for p in super::places(&state.db, user).await? {
        if !regs.iter().any(|r| r.location_id == p.id) {
            continue;
        }
        let last_full = store::inventories(&state.db, clinic, p.id)
            .await?
            .into_iter()
            .filter(|i| i.kind == "initial" || i.kind == "biennial")
            .filter_map(|i| i.taken_on.parse::<jiff::civil::Date>().ok())
            .max();
        let text = match inventory_status(last_full, p.date_of(UtcTs::now())) {
            InventoryStatus::InitialNeeded => {
                Some(format!("{}: take the initial controlled-substance inventory", p.name))
            }
            InventoryStatus::DueSoon { due_by } => Some(format!("{}: biennial inventory due by {due_by}", p.name)),
            InventoryStatus::Overdue { due_by } => {
                Some(format!("{}: biennial inventory OVERDUE (was due by {due_by})", p.name))
            }
            InventoryStatus::Current { .. } => None,
        };
        if let Some(text) = text {
            out.push((format!("/cs?location={}#count", p.id), text));
        }
    }
    let open = store::discrepancies(&state.db, clinic, true).await?;
    for d in &open {
        let settings = match regs.iter().find(|r| r.location_id == d.location_id) {
            Some(r) => registered(r)?.settings,
            None => kapstone_domain::ledger::LedgerSettings::default(),
        };
        let bodies = store::discrepancy_events(&state.db, d.id).await?;
        let records: Vec<kapstone_domain::ledger::discrepancy::DiscrepancyRecord> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|_| AppError::Internal(anyhow::anyhow!("stored discrepancy"))))
            .collect::<Result<_, _>>()?;
        let Some(disc) = kapstone_domain::ledger::discrepancy::Discrepancy::replay(&records) else { continue };
        // Deadlines fall on the location's calendar, as on the discrepancy's own page.
        let today = match super::places(&state.db, user).await?.into_iter().find(|p| p.id == d.location_id) {
            Some(p) => p.date_of(UtcTs::now()),
            None => crate::app::scheduling::to_jiff(UtcTs::now()).to_zoned(jiff::tz::TimeZone::UTC).date(),
        };
        use kapstone_domain::ledger::discrepancy::Deadline;
        let timers = match disc.timers(today, &settings.holidays) {
            Some((notice, form)) => {
                let word = |name: &str, d: Deadline| match d {
                    Deadline::Due { by } => Some(format!("{name} due by {by}")),
                    Deadline::Overdue { by } => Some(format!("{name} OVERDUE (was due by {by})")),
                    Deadline::Done { .. } => None,
                };
                [word("written notice", notice), word("DEA Form 106", form)].into_iter().flatten().collect::<Vec<_>>()
            }
            None => vec!["under investigation".to_owned()],
        };
        out.push((
            format!("/cs/discrepancies/{}", d.id),
            format!("Controlled-substance discrepancy found {}: {}", d.found_on, timers.join("; ")),
        ));
    }
    if !out.is_empty() {
        audit_read(state, user, None, format!("home: {} items due", out.len())).await?;
    }
    Ok(out)
}
