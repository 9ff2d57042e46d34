//! Recording stock movements: receipts, waste of a draw's remainder, destructions (Form 41),
//! transfers and returns, adjustments, reversals, and counts (inventories).

use kapstone_domain::FieldError;
use kapstone_domain::ids::{CsProductId, InventoryId, LedgerEntryId};
use kapstone_domain::ledger::chain::StoredLedgerEntry;
use kapstone_domain::ledger::discrepancy::{DiscrepancyEvent, DiscrepancyRecord, Origin, check_opening};
use kapstone_domain::ledger::entry::EntryHeader;
use kapstone_domain::ledger::inventory::{CountLine, check_inventory, count_detail};
use kapstone_domain::ledger::{
    Adjustment, DeaNumber, Destruction, DestructionReason, Direction, EntryDetail, InventoryKind, LotNumber, Measure,
    Micrograms, Receipt, Registrant, Reversal, TakenAt, TransferOut, TransferPurpose, Waste,
};
use kapstone_domain::{UtcTs, audit::AuditAction, audit::Outcome};
use kapstone_store::ledger as store;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::witness::{WitnessCredentials, authenticate};
use super::{Writer, entry_of, occurred_at, person, place, recorded_event, refused};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// What every stock movement names.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stock {
    pub location: Uuid,
    pub product: Uuid,
    pub lot: String,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrantInput {
    pub name: String,
    pub address: String,
    pub dea_number: String,
}

fn registrant(field: &'static str, r: &RegistrantInput) -> Result<Registrant, AppError> {
    Ok(Registrant {
        name: r.name.trim().to_owned(),
        address: r.address.trim().to_owned(),
        dea_number: DeaNumber::parse(field, &r.dea_number)?,
    })
}

/// The entries a request appended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Appended {
    pub entries: Vec<AppendedEntry>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AppendedEntry {
    pub id: String,
    pub seq: i64,
    #[schemars(with = "kapstone_domain::ledger::EntryKind")]
    pub kind: String,
    pub product: String,
    pub lot: String,
    pub change_mg: f64,
}

fn appended(stored: &[StoredLedgerEntry]) -> Appended {
    Appended {
        entries: stored
            .iter()
            .map(|s| AppendedEntry {
                id: s.entry_id.clone(),
                seq: s.seq,
                kind: s.kind.clone(),
                product: s.product_id.clone(),
                lot: s.lot.clone(),
                change_mg: Micrograms::from_ug(s.change_ug).mg(),
            })
            .collect(),
    }
}

fn lot_number(raw: &str) -> Result<LotNumber, AppError> {
    Ok(LotNumber::parse("lot", raw)?)
}

/// Runs `build` in a writer for `location`, writes the entries with their audit event and
/// commits.
async fn write_with(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    build: impl AsyncFnOnce(&mut kapstone_store::Tx, &mut Writer) -> Result<(), AppError>,
) -> Result<Vec<StoredLedgerEntry>, AppError> {
    let place = place(state, user, location).await?;
    let mut tx = state.db.begin().await?;
    let mut w = Writer::start(&mut tx, user, place).await?;
    build(&mut tx, &mut w).await?;
    let stored = w.write(&mut tx).await?;
    kapstone_store::audit::append(&mut tx, &recorded_event(user, location, &stored)).await?;
    // What the write answers (its callers return it), stored with it for a retried request.
    tx.commit_answering(&appended(&stored)).await?;
    Ok(stored)
}

fn header(w: &Writer, user: &CurrentUser, product: Uuid, lot: LotNumber, at: Option<UtcTs>) -> EntryHeader {
    EntryHeader {
        location: w.location(),
        product: CsProductId::from_uuid(product),
        lot,
        occurred_at: at.unwrap_or(w.now),
        recorded_at: w.now,
        recorded_by: person(user),
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptInput {
    #[serde(flatten)]
    pub stock: Stock,
    /// The expiry printed on the lot (a new lot is added to the registry).
    pub expiry: jiff::civil::Date,
    pub supplier: RegistrantInput,
    pub containers: u32,
    #[serde(default)]
    pub invoice: Option<String>,
    /// The date actually received (21 CFR 1304.21(d)); now when left out.
    #[serde(default)]
    pub received_at: Option<String>,
}

/// Containers received from a supplier, from the invoice.
pub async fn receive(state: &AppState, user: &CurrentUser, input: ReceiptInput) -> Result<Appended, AppError> {
    let lot = lot_number(&input.stock.lot)?;
    let supplier = registrant("supplier.dea_number", &input.supplier)?;
    let at = occurred_at(input.received_at.as_deref(), "received_at")?;
    if input.containers == 0 {
        return Err(FieldError::new("containers", "receive at least one container").into());
    }
    let invoice = input.invoice.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let stored = write_with(state, user, input.stock.location, async |tx, w| {
        let product = CsProductId::from_uuid(input.stock.product);
        let Some(p) = store::product_in(tx, user.clinic.as_uuid(), product.as_uuid()).await? else {
            return Err(FieldError::new("product", "no such product in this clinic").into());
        };
        let form = super::product_of(&p)?.form;
        store::ensure_lot(tx, product.as_uuid(), lot.as_str(), &input.expiry.to_string()).await.map_err(
            |e| match e {
                kapstone_store::StoreError::Conflict(_) => AppError::Invalid(FieldError::new(
                    "expiry",
                    format!("lot {lot} is recorded with another expiry: check the label"),
                )),
                other => other.into(),
            },
        )?;
        let amount = Measure::Containers(input.containers).amount("containers", &form)?;
        let e = header(w, user, input.stock.product, lot.clone(), at).entry(EntryDetail::Receipt(Receipt {
            supplier,
            containers: input.containers,
            amount,
            invoice,
        }));
        w.push(tx, e).await.map(drop)
    })
    .await?;
    Ok(appended(&stored))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WasteInput {
    pub method: String,
    /// The witness who authenticates here (required unless the location's settings say not).
    #[serde(default)]
    pub witness: Option<WitnessCredentials>,
    /// The amount left of the draw when left out.
    #[serde(default)]
    pub measure: Option<Measure>,
}

/// The remainder of a dosing session's draw, wasted with a witness (not a Form 41 event,
/// TV-DEA-6). `draw` is the draw's entry id.
pub async fn waste(state: &AppState, user: &CurrentUser, draw: Uuid, input: WasteInput) -> Result<Appended, AppError> {
    crate::app::reauth::require_recent(state, user)?;
    let witness = match &input.witness {
        Some(c) => Some(authenticate(state, user, "witness", c).await?),
        None => None,
    };
    let draw_id = LedgerEntryId::from_uuid(draw);
    // Which location and lot the draw is in.
    let found = super::reports::entry_by_id(state, user, draw).await?;
    let Some(found) = found else { return Err(FieldError::new("draw", "no such draw in this clinic").into()) };
    let stored = write_with(state, user, found.location.as_uuid(), async |tx, w| {
        w.hold(tx, found.product, &found.lot).await?;
        let bucket = w.bucket(found.product, &found.lot).ok_or_else(|| AppError::NotFound)?;
        let Some(open) = bucket.open_draws().into_iter().find(|d| d.draw == draw_id) else {
            return Err(AppError::Refused {
                code: "draw",
                field: Some("draw"),
                message: "this draw is fully accounted for (or is not a draw)".into(),
            });
        };
        // What is left of a draw is known only once what was given is recorded: waste before it
        // would let the whole draw be "wasted" while the dose goes unrecorded.
        if !administered(tx, &found, draw_id).await? {
            return Err(AppError::Refused {
                code: "draw",
                field: Some("draw"),
                message: "record what was given from this draw first (it is recorded when the administration ends)"
                    .into(),
            });
        }
        let form = w.product(found.product, &found.lot).map(|p| p.form).ok_or(AppError::NotFound)?;
        let measure =
            input.measure.unwrap_or_else(|| kapstone_domain::ledger::dispensing::measure_for(open.remainder, &form));
        let amount = measure.amount("measure", &form)?;
        let e = header(w, user, found.product.as_uuid(), found.lot.clone(), None).entry(EntryDetail::Waste(Waste {
            draw: draw_id,
            measure,
            amount,
            method: input.method.trim().to_owned(),
            witness,
        }));
        w.push(tx, e).await.map(drop)
    })
    .await?;
    Ok(appended(&stored))
}

/// Does the draw have an administration that has not been reversed?
async fn administered(tx: &mut kapstone_store::Tx, found: &Found, draw: LedgerEntryId) -> Result<bool, AppError> {
    let mut given = Vec::new();
    let mut reversed = Vec::new();
    for s in store::bucket_in(tx, found.location.as_uuid(), found.product.as_uuid(), found.lot.as_str()).await? {
        let e = entry_of(&s)?;
        match &e.detail {
            EntryDetail::Administration(a) if a.draw == draw => given.push(e.id),
            EntryDetail::Reversal(r) => reversed.push(r.reverses),
            _ => {}
        }
    }
    Ok(given.iter().any(|g| !reversed.contains(g)))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministrationInput {
    /// What was actually given, in mg.
    pub amount_mg: String,
}

/// Records what was given from a draw when the session could not say it: a session stopped
/// before its administration ended, or an infusion stopped early whose automatic record was
/// reversed. The patient, route and session are the draw's; the person recording is the one
/// who gave it.
pub async fn administer(
    state: &AppState,
    user: &CurrentUser,
    draw: Uuid,
    input: AdministrationInput,
) -> Result<Appended, AppError> {
    let amount = Micrograms::parse_mg("amount_mg", &input.amount_mg)?.positive("amount_mg")?;
    let Some(stored) = store::entry_by_id(&state.db, user.clinic.as_uuid(), draw).await? else {
        return Err(FieldError::new("draw", "no such draw in this clinic").into());
    };
    let entry = entry_of(&stored)?;
    let EntryDetail::Draw(d) = &entry.detail else {
        return Err(FieldError::new("draw", "this entry is not a draw").into());
    };
    let row = kapstone_store::dosing::session(&state.db, user.clinic, d.session.as_uuid())
        .await?
        .ok_or_else(|| FieldError::new("draw", "this draw's dosing session is not in Kapstone"))?;
    let loaded = crate::app::sessions::load_row(state, user, row.clone()).await?;
    let route = loaded
        .session()
        .administration()
        .map(|a| a.details.route_snomed.clone())
        .ok_or_else(|| FieldError::new("draw", "the session has no administration record"))?;
    let patient = super::dosing::patient_on_record(state, user, &row).await?;
    let found = Found::of(&stored)?;
    let draw_id = LedgerEntryId::from_uuid(draw);
    let session = d.session;
    let stored = write_with(state, user, found.location.as_uuid(), async |tx, w| {
        if administered(tx, &found, draw_id).await? {
            return Err(AppError::Refused {
                code: "draw",
                field: Some("draw"),
                message: "what was given from this draw is already recorded: reverse it first to correct it".into(),
            });
        }
        let e = header(w, user, found.product.as_uuid(), found.lot.clone(), None).entry(EntryDetail::Administration(
            kapstone_domain::ledger::AdministrationEntry {
                draw: draw_id,
                session,
                patient: patient.clone(),
                administered_by: person(user),
                amount,
                route_snomed: route.clone(),
            },
        ));
        w.push(tx, e).await.map(drop)
    })
    .await?;
    Ok(appended(&stored))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestructionInput {
    #[serde(flatten)]
    pub stock: Stock,
    pub reason: DestructionReason,
    pub full_containers: u32,
    #[serde(default)]
    pub partial: Option<Measure>,
    pub method: String,
    /// Two authorised witnesses, both authenticating here (Form 41; TV-DEA-7).
    pub witnesses: Vec<WitnessCredentials>,
    #[serde(default)]
    pub destroyed_at: Option<String>,
}

/// On-site destruction of expired or damaged stock, recorded as DEA Form 41 content.
pub async fn destroy(state: &AppState, user: &CurrentUser, input: DestructionInput) -> Result<Appended, AppError> {
    crate::app::reauth::require_recent(state, user)?;
    let lot = lot_number(&input.stock.lot)?;
    let at = occurred_at(input.destroyed_at.as_deref(), "destroyed_at")?;
    if input.witnesses.len() != 2 {
        return Err(AppError::Refused {
            code: "form_41",
            field: Some("witnesses"),
            message: "DEA Form 41 needs two witnesses who saw the destruction and both sign in to confirm it".into(),
        });
    }
    // The same person twice is refused before anyone authenticates (a second TOTP check of the
    // same code would fail as reused and count toward their lockout).
    if let [a, b] = input.witnesses.as_slice()
        && a.email.trim().eq_ignore_ascii_case(b.email.trim())
    {
        return Err(AppError::Refused {
            code: "form_41",
            field: Some("witnesses[1]"),
            message: "the two witnesses must be two different people".into(),
        });
    }
    let mut witnesses = Vec::new();
    for (field, c) in ["witnesses[0]", "witnesses[1]"].into_iter().zip(&input.witnesses) {
        witnesses.push(authenticate(state, user, field, c).await?);
    }
    let stored = write_with(state, user, input.stock.location, async |tx, w| {
        let product = CsProductId::from_uuid(input.stock.product);
        w.hold(tx, product, &lot).await?;
        let form = w.product(product, &lot).map(|p| p.form).ok_or(AppError::NotFound)?;
        let per = form.per_container().ok_or_else(|| FieldError::new("product", "unknown size"))?;
        let full =
            per.checked_mul(input.full_containers).ok_or_else(|| FieldError::new("full_containers", "too large"))?;
        let partial = match input.partial {
            Some(p) => p.amount("partial", &form)?,
            None => Micrograms::ZERO,
        };
        let amount = full.checked_add(partial).ok_or_else(|| FieldError::new("full_containers", "too large"))?;
        let e = header(w, user, input.stock.product, lot.clone(), at).entry(EntryDetail::Destruction(Destruction {
            reason: input.reason.clone(),
            full_containers: input.full_containers,
            partial: input.partial,
            amount,
            method: input.method.trim().to_owned(),
            witnesses: witnesses.clone(),
        }));
        w.push(tx, e).await.map(drop)
    })
    .await?;
    Ok(appended(&stored))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    #[serde(flatten)]
    pub stock: Stock,
    pub purpose: TransferPurpose,
    pub recipient: RegistrantInput,
    pub measure: Measure,
    pub document: String,
    #[serde(default)]
    pub sent_at: Option<String>,
}

/// A return to the supplier or a transfer to a reverse distributor or another registrant.
pub async fn transfer(state: &AppState, user: &CurrentUser, input: TransferInput) -> Result<Appended, AppError> {
    let lot = lot_number(&input.stock.lot)?;
    let recipient = registrant("recipient.dea_number", &input.recipient)?;
    let at = occurred_at(input.sent_at.as_deref(), "sent_at")?;
    let stored = write_with(state, user, input.stock.location, async |tx, w| {
        let product = CsProductId::from_uuid(input.stock.product);
        w.hold(tx, product, &lot).await?;
        let form = w.product(product, &lot).map(|p| p.form).ok_or(AppError::NotFound)?;
        let amount = input.measure.amount("measure", &form)?;
        let e = header(w, user, input.stock.product, lot.clone(), at).entry(EntryDetail::TransferOut(TransferOut {
            purpose: input.purpose,
            recipient,
            measure: input.measure,
            amount,
            document: input.document.trim().to_owned(),
        }));
        w.push(tx, e).await.map(drop)
    })
    .await?;
    Ok(appended(&stored))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentInput {
    #[serde(flatten)]
    pub stock: Stock,
    pub direction: Direction,
    pub amount_mg: String,
    pub reason: String,
}

/// A correction no other kind describes, with its reason.
pub async fn adjust(state: &AppState, user: &CurrentUser, input: AdjustmentInput) -> Result<Appended, AppError> {
    let lot = lot_number(&input.stock.lot)?;
    let amount = Micrograms::parse_mg("amount_mg", &input.amount_mg)?.positive("amount_mg")?;
    let stored = write_with(state, user, input.stock.location, async |tx, w| {
        let e = header(w, user, input.stock.product, lot.clone(), None).entry(EntryDetail::Adjustment(Adjustment {
            direction: input.direction,
            amount,
            reason: input.reason.trim().to_owned(),
        }));
        w.push(tx, e).await.map(drop)
    })
    .await?;
    Ok(appended(&stored))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalInput {
    pub reason: String,
}

/// Undoes a mistaken entry by a reversing entry with its reason; the entry itself stays.
pub async fn reverse(
    state: &AppState,
    user: &CurrentUser,
    entry: Uuid,
    input: ReversalInput,
) -> Result<Appended, AppError> {
    let Some(found) = super::reports::entry_by_id(state, user, entry).await? else {
        return Err(AppError::NotFound);
    };
    let stored =
        write_with(state, user, found.location.as_uuid(), async |tx, w| {
            let mut e = header(w, user, found.product.as_uuid(), found.lot.clone(), None).entry(EntryDetail::Reversal(
                Reversal { reverses: LedgerEntryId::from_uuid(entry), reason: input.reason.trim().to_owned() },
            ));
            // An entry from before the lot's last count is already reflected in what was counted: the
            // reversal says so (it corrects the record without changing the counted balance).
            match w.push(tx, e.clone()).await {
                Err(AppError::Refused { field: Some("included_in_count"), .. }) => {
                    e.included_in_count = w.bucket(found.product, &found.lot).and_then(|b| b.last_count());
                    w.push(tx, e).await.map(drop)
                }
                other => other.map(drop),
            }
        })
        .await?;
    Ok(appended(&stored))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountInput {
    pub location: Uuid,
    /// `initial`, `biennial` or `count` (a reconciliation count).
    #[serde(default = "count_kind")]
    pub kind: InventoryKind,
    #[serde(default = "close_of_business")]
    pub taken_at: TakenAt,
    pub lines: Vec<CountLine>,
    /// When the count was taken; now when left out.
    #[serde(default)]
    pub counted_at: Option<String>,
}

fn count_kind() -> InventoryKind {
    InventoryKind::Count
}

fn close_of_business() -> TakenAt {
    TakenAt::CloseOfBusiness
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CountResult {
    pub inventory_id: Uuid,
    pub kind: InventoryKind,
    pub lines: Vec<CountedLine>,
    /// The discrepancies this count opened (TV-DEA-5), one per lot that differed.
    pub discrepancies: Vec<OpenedDiscrepancy>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CountedLine {
    pub product: Uuid,
    pub lot: String,
    pub expected_mg: f64,
    pub counted_mg: f64,
    pub difference_mg: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OpenedDiscrepancy {
    pub id: Uuid,
    pub product: Uuid,
    pub lot: String,
    pub expected_mg: f64,
    pub counted_mg: f64,
    pub difference_mg: f64,
}

/// A physical count signed by the person taking it: one count entry per lot, and a discrepancy
/// opened for every lot whose count differs from the ledger.
pub async fn count(state: &AppState, user: &CurrentUser, input: CountInput) -> Result<CountResult, AppError> {
    crate::app::reauth::require_recent(state, user)?;
    let place = place(state, user, input.location).await?;
    if input.lines.is_empty() && input.kind == InventoryKind::Count {
        return Err(FieldError::new("lines", "count at least one lot").into());
    }
    if input.lines.len() > 500 {
        return Err(FieldError::new("lines", "at most 500 lots in one count").into());
    }
    let at = occurred_at(input.counted_at.as_deref(), "counted_at")?;
    let mut tx = state.db.begin().await?;
    let mut w = Writer::start(&mut tx, user, place.clone()).await?;
    let at = at.unwrap_or(w.now);
    let inventory = InventoryId::new();
    let on_hand: std::collections::BTreeMap<_, _> = {
        let mut m = std::collections::BTreeMap::new();
        for (product, lot, ug) in store::balances_in(&mut tx, user.clinic.as_uuid(), input.location).await? {
            let lot = LotNumber::parse("lot", &lot).map_err(|_| AppError::Internal(anyhow::anyhow!("stored lot")))?;
            m.insert(
                kapstone_domain::ledger::StockKey {
                    location: w.location(),
                    product: CsProductId::from_uuid(product),
                    lot,
                },
                Micrograms::from_ug(ug),
            );
        }
        m
    };
    let last_full = store::last_full_inventory_in(&mut tx, input.location)
        .await?
        .map(|d| d.parse::<jiff::civil::Date>())
        .transpose()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("stored inventory date")))?;
    check_inventory(w.location(), input.kind, &input.lines, &on_hand, last_full).map_err(refused)?;
    let mut lines = Vec::new();
    let mut entries = Vec::new();
    for line in &input.lines {
        w.hold(&mut tx, line.product, &line.lot).await?;
        let product = w.product(line.product, &line.lot).cloned().ok_or(AppError::NotFound)?;
        let bucket = w.bucket(line.product, &line.lot).ok_or(AppError::NotFound)?;
        let detail = count_detail(inventory, input.kind, input.taken_at, line, &product, bucket).map_err(refused)?;
        lines.push(CountedLine {
            product: line.product.as_uuid(),
            lot: line.lot.to_string(),
            expected_mg: detail.expected.mg(),
            counted_mg: detail.counted.mg(),
            difference_mg: detail.difference().mg(),
        });
        let e = header(&w, user, line.product.as_uuid(), line.lot.clone(), Some(at))
            .entry(EntryDetail::InventoryCount(detail));
        w.push(&mut tx, e.clone()).await?;
        entries.push(e);
    }
    let taken_on = place.date_of(at);
    store::insert_inventory(
        &mut tx,
        &store::NewInventory {
            id: inventory.as_uuid(),
            clinic: user.clinic.as_uuid(),
            location: input.location,
            kind: input.kind.as_str(),
            taken_at: match input.taken_at {
                TakenAt::OpeningOfBusiness => "opening_of_business",
                TakenAt::CloseOfBusiness => "close_of_business",
            },
            taken_on: &taken_on.to_string(),
            occurred_at: at,
            taken_by: user.id.as_uuid(),
            lines: i64::try_from(input.lines.len()).unwrap_or(i64::MAX),
        },
    )
    .await?;
    // Each differing lot opens a discrepancy, found on the day of the count.
    let mut discrepancies = Vec::new();
    let mut audit = Vec::new();
    for e in &entries {
        let Some(origin) = Origin::from_count(e) else { continue };
        let record = DiscrepancyRecord {
            at: w.now,
            by: person(user),
            event: DiscrepancyEvent::Opened { origin: origin.clone(), found_on: taken_on },
        };
        check_opening(&record, w.today).map_err(refused)?;
        let id = Uuid::now_v7();
        store::insert_discrepancy(&mut tx, id, user.clinic.as_uuid(), input.location, &taken_on.to_string(), w.now)
            .await?;
        let body = serde_json::to_string(&record).map_err(|e| AppError::Internal(e.into()))?;
        store::append_discrepancy_event(&mut tx, id, 1, w.now, user.id.as_uuid(), &body).await?;
        if let Origin::Count { expected, counted, .. } = origin {
            discrepancies.push(OpenedDiscrepancy {
                id,
                product: e.product.as_uuid(),
                lot: e.lot.to_string(),
                expected_mg: expected.mg(),
                counted_mg: counted.mg(),
                difference_mg: counted.saturating_sub(expected).mg(),
            });
        }
        let mut ev = user.event(AuditAction::DiscrepancyRecorded, "cs_discrepancy", Outcome::Success);
        ev.entity_id = Some(id.to_string());
        ev.reason = Some(format!("opened by count {}", e.id));
        audit.push(ev);
    }
    let stored = w.write(&mut tx).await?;
    audit.insert(0, recorded_event(user, input.location, &stored));
    kapstone_store::audit::append_all(&mut tx, &audit).await?;
    let result = CountResult { inventory_id: inventory.as_uuid(), kind: input.kind, lines, discrepancies };
    tx.commit_answering(&result).await?;
    Ok(result)
}

/// The entry a request names, to find its location and lot.
pub(crate) struct Found {
    pub location: kapstone_domain::ids::LocationId,
    pub product: CsProductId,
    pub lot: LotNumber,
}

impl Found {
    pub(crate) fn of(s: &StoredLedgerEntry) -> Result<Self, AppError> {
        let e = entry_of(s)?;
        Ok(Self { location: e.location, product: e.product, lot: e.lot })
    }
}
