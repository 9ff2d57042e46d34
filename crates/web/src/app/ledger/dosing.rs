//! A dosing session's draws (KAP-SPEC 9.2; issue 6 "linked to dosing").
//!
//! When a session records its administration at a location that keeps its ledger in Kapstone
//! (one with a DEA registration recorded), the same transaction draws the dose from the lot the
//! administration record names. When the administration ends (at once for an injection, at its
//! end for an infusion or lozenge, at the last device for SPRAVATO), the amount actually given is
//! recorded against the draw. What is left of the draw stays "in use" until it is wasted with a
//! witness ([`super::transactions::waste`]); the session page shows it as a step.
//!
//! A location without a registration keeps its controlled-substance record elsewhere, and its
//! sessions record no draw.

use kapstone_domain::ids::{CsProductId, DosingSessionId, LedgerEntryId};
use kapstone_domain::ledger::chain::StoredLedgerEntry;
use kapstone_domain::ledger::dispensing::{administered_amount, draw_for_administration};
use kapstone_domain::ledger::entry::EntryHeader;
use kapstone_domain::ledger::{
    AdministrationEntry, EntryDetail, LotNumber, Measure, Micrograms, PatientOnRecord, Person,
};
use kapstone_domain::protocol::Protocol;
use kapstone_domain::session::{Administration, Session};
use kapstone_domain::{FieldError, PatientId, UtcTs};
use kapstone_store::dosing::SessionRow;
use kapstone_store::{Tx, ledger as store};
use serde::Serialize;
use uuid::Uuid;

use super::{Place, Writer, entry_of, person, product_of, refused};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// Does the session's location keep its ledger here?
pub async fn keeps_ledger(tx: &mut Tx, user: &CurrentUser, location: Uuid) -> Result<bool, AppError> {
    Ok(store::registration_in(tx, user.clinic.as_uuid(), location).await?.is_some())
}

async fn session_place(state: &AppState, user: &CurrentUser, row: &SessionRow) -> Result<Place, AppError> {
    super::place(state, user, row.location_id).await
}

/// The patient as the dispensing record needs them (name and address, as on the chart today).
pub(crate) async fn patient_on_record(
    state: &AppState,
    user: &CurrentUser,
    row: &SessionRow,
) -> Result<PatientOnRecord, AppError> {
    let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(row.patient_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let name = format!("{} {}", p.given_name, p.family_name);
    Ok(PatientOnRecord::new(PatientId::from_uuid(row.patient_id), &name, p.address.as_deref())?)
}

/// Draws the administration's dose (or `drawn`, when more is drawn than given) from the lot it
/// names, in the session's transaction. Refused, naming the field, when the lot is not in this
/// location's registry, has expired, or holds too little; or when the patient's chart lacks the
/// address the record needs.
pub async fn draw(
    state: &AppState,
    tx: &mut Tx,
    user: &CurrentUser,
    row: &SessionRow,
    administration: &Administration,
    drawn: Option<Measure>,
    at: UtcTs,
) -> Result<Vec<StoredLedgerEntry>, AppError> {
    if !keeps_ledger(tx, user, row.location_id).await? {
        if drawn.is_some() {
            return Err(FieldError::new("drawn", "this location keeps no controlled-substance ledger here").into());
        }
        return Ok(Vec::new());
    }
    // Reads through the pool come before the head's lock is taken (a writer holding it must not
    // wait for a pooled connection).
    patient_on_record(state, user, row).await?;
    let place = session_place(state, user, row).await?;
    let products = store::products(&state.db, user.clinic.as_uuid()).await?;
    let mut w = Writer::start(tx, user, place).await?;
    let lot = LotNumber::parse("lot", &administration.lot)?;
    let ndc = administration.ndc.as_deref().map(str::trim).filter(|n| !n.is_empty());
    // The product is the one whose lot this is (and whose NDC matches, when the record names one).
    let mut product = None;
    for p in products {
        let candidate = product_of(&p)?;
        if ndc.is_some_and(|n| n != candidate.ndc.as_str()) {
            continue;
        }
        if store::lot_in(tx, p.id, lot.as_str()).await?.is_some() {
            product = Some(candidate);
            break;
        }
    }
    let Some(product) = product else {
        return Err(AppError::Refused {
            code: "lot",
            field: Some("lot"),
            message: format!(
                "lot {lot}{} is not in {}'s controlled-substance stock: check the label, or record its receipt first",
                ndc.map(|n| format!(" (NDC {n})")).unwrap_or_default(),
                w.place.name
            ),
        });
    };
    w.hold(tx, product.id, &lot).await?;
    let stock_lot = w.lot(product.id, &lot).cloned().ok_or(AppError::NotFound)?;
    let dose = Micrograms::from_mg_f64("dose_mg", administration.dose_mg)?;
    // Drawn as a person would: mL of a solution, whole tablets or devices.
    let measure = drawn.unwrap_or_else(|| kapstone_domain::ledger::dispensing::measure_for(dose, &product.form));
    let detail = draw_for_administration(
        administration,
        DosingSessionId::from_uuid(row.id),
        &product,
        &stock_lot,
        measure,
        w.today,
    )
    .map_err(refused)?;
    let e = EntryHeader {
        location: w.location(),
        product: product.id,
        lot,
        occurred_at: at,
        recorded_at: w.now,
        recorded_by: person(user),
    }
    .entry(EntryDetail::Draw(detail));
    w.push(tx, e).await?;
    w.write(tx).await
}

/// Once the session's administration has ended, records what was given against each of its
/// draws not yet accounted for (in the session's transaction). Nothing when nothing was drawn,
/// the administration is still running, or it is already recorded.
pub async fn settle(
    state: &AppState,
    tx: &mut Tx,
    user: &CurrentUser,
    row: &SessionRow,
    session: &Session,
    protocol: &Protocol,
) -> Result<Vec<StoredLedgerEntry>, AppError> {
    let Some(given) = administered_amount(session, protocol)? else { return Ok(Vec::new()) };
    let Some(a) = session.administration() else { return Ok(Vec::new()) };
    let lots = store::lots_of_session_in(tx, row.id).await?;
    if lots.is_empty() {
        return Ok(Vec::new());
    }
    let place = session_place(state, user, row).await?;
    let patient = patient_on_record(state, user, row).await?;
    let mut w = Writer::start(tx, user, place).await?;
    let session_id = DosingSessionId::from_uuid(row.id);
    let by = kapstone_store::users::get_in(tx, a.by.user).await?.ok_or(AppError::NotFound)?;
    let administered_by = Person { user: a.by.user, role: a.by.role, name: by.display_name.clone() };
    let mut left = given;
    for (location, product, lot) in lots {
        if location != row.location_id {
            continue;
        }
        let product = CsProductId::from_uuid(product);
        let lot = LotNumber::parse("lot", &lot).map_err(|_| AppError::Internal(anyhow::anyhow!("stored lot")))?;
        w.hold(tx, product, &lot).await?;
        // Draws of this session that have no administration yet.
        let entries = store::bucket_in(tx, row.location_id, product.as_uuid(), lot.as_str()).await?;
        let mut administered: Vec<LedgerEntryId> = Vec::new();
        for s in &entries {
            if let EntryDetail::Administration(x) = entry_of(s)?.detail {
                administered.push(x.draw);
            }
        }
        let open = w
            .bucket(product, &lot)
            .map(|b| b.open_draws())
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.session == session_id && !administered.contains(&d.draw));
        for d in open.collect::<Vec<_>>() {
            if left.ug() <= 0 {
                break;
            }
            let amount = if left > d.remainder { d.remainder } else { left };
            left = left.saturating_sub(amount);
            let e = EntryHeader {
                location: w.location(),
                product,
                lot: lot.clone(),
                occurred_at: a.ended_at.unwrap_or(a.started_at),
                recorded_at: w.now,
                recorded_by: person(user),
            }
            .entry(EntryDetail::Administration(AdministrationEntry {
                draw: d.draw,
                session: session_id,
                patient: patient.clone(),
                administered_by: administered_by.clone(),
                amount,
                route_snomed: a.details.route_snomed.clone(),
            }));
            w.push(tx, e).await?;
        }
    }
    if left.ug() > 0 {
        return Err(AppError::Refused {
            code: "exceeds_draw",
            field: Some("lot"),
            message: format!("{given} was given but only part of it was drawn: record the draw of the rest first"),
        });
    }
    w.write(tx).await
}

/// A session's controlled-substance entries for its page: what was drawn, given and wasted, and
/// what is still to be wasted.
#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
pub struct SessionStock {
    pub keeps_ledger: bool,
    pub draws: Vec<SessionDraw>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionDraw {
    pub draw: String,
    pub product: String,
    pub lot: String,
    pub drawn: String,
    pub administered: Option<String>,
    pub wasted: Option<String>,
    /// Left to waste (with a witness); zero once accounted for.
    pub remainder_mg: f64,
    pub remainder: String,
}

/// (An audited read of the ledger when the session drew anything.)
pub async fn of_session(state: &AppState, user: &CurrentUser, row: &SessionRow) -> Result<SessionStock, AppError> {
    let stock = session_stock(state, user, row).await?;
    if !stock.draws.is_empty() {
        super::audit_read(state, user, Some(row.location_id), format!("draws of session {}", row.id)).await?;
    }
    Ok(stock)
}

async fn session_stock(state: &AppState, user: &CurrentUser, row: &SessionRow) -> Result<SessionStock, AppError> {
    let clinic = user.clinic.as_uuid();
    let keeps_ledger = store::registration(&state.db, clinic, row.location_id).await?.is_some();
    let stored = store::of_session(&state.db, clinic, row.id).await?;
    let cat = super::reports::Catalogue::load(state, user).await?;
    let mut draws = Vec::new();
    for s in &stored {
        let e = entry_of(s)?;
        let EntryDetail::Draw(d) = &e.detail else { continue };
        // The lot's entries tell what accounts for this draw.
        let lot_entries = store::entries(
            &state.db,
            clinic,
            e.location.as_uuid(),
            // What accounts for a draw comes after it in the chain.
            &store::EntryFilter {
                product: Some(e.product.as_uuid()),
                lot: Some(e.lot.to_string()),
                after_seq: Some(s.seq - 1),
                ..Default::default()
            },
            100_000,
        )
        .await?;
        let mut entries = Vec::new();
        for x in &lot_entries {
            entries.push(entry_of(x)?);
        }
        let bucket = kapstone_domain::ledger::Bucket::fold(&entries);
        let remainder =
            bucket.open_draws().into_iter().find(|o| o.draw == e.id).map_or(Micrograms::ZERO, |o| o.remainder);
        let administered = entries.iter().find_map(|x| match &x.detail {
            EntryDetail::Administration(a) if a.draw == e.id => Some(a.amount.to_string()),
            _ => None,
        });
        let wasted = entries.iter().find_map(|x| match &x.detail {
            EntryDetail::Waste(w) if w.draw == e.id => Some(w.amount.to_string()),
            _ => None,
        });
        draws.push(SessionDraw {
            draw: e.id.to_string(),
            product: cat.products.get(&e.product.as_uuid()).map(|p| p.name.clone()).unwrap_or_default(),
            lot: e.lot.to_string(),
            drawn: d.measure.describe(),
            administered,
            wasted,
            remainder_mg: remainder.mg(),
            remainder: remainder.mg_text(),
        });
    }
    Ok(SessionStock { keeps_ledger, draws })
}
