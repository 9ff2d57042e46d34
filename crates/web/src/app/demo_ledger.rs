//! The demo clinic's controlled-substance stock (issue 6): the main location registered, four
//! products, an initial inventory taken almost two years ago (so the biennial inventory is due
//! soon), receipts a month ago, a month of draws, administrations and witnessed waste, and a count
//! two days ago that found 10 mg missing (one open discrepancy).
//!
//! The lots are the ones the demo's dosing sessions (and the test suites) name on their
//! administration records, so a session on the demo's floor draws from real stock.
//!
//! The past month's administrations are written straight to the ledger with the domain's checks,
//! as history from before the demo's sessions; their sessions are not in the demo. Witnesses are
//! set here (a demo seeded from the command line has nobody to type a password).

use jiff::ToSpan;
use kapstone_domain::ids::{DosingSessionId, LocationId};
use kapstone_domain::ledger::entry::EntryHeader;
use kapstone_domain::ledger::inventory::CountLine;
use kapstone_domain::ledger::{
    AdministrationEntry, CsProduct, Draw, EntryDetail, InventoryKind, LotNumber, Measure, Micrograms, Microlitres,
    OpenedContainer, PatientOnRecord, ProductForm, Substance, TakenAt, Waste, Witness,
};
use kapstone_domain::{PatientId, UtcTs};
use kapstone_store::scheduling as st;

use super::demo::demo_actor;
use super::ledger::registry::{ProductInput, RegistrationInput, add_product, save_registration};
use super::ledger::transactions::{CountInput, ReceiptInput, RegistrantInput, Stock, count, receive};
use super::ledger::{Writer, person, place, recorded_event};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// The demo's lots, as the demo's floor and the test suites name them.
pub const KETAMINE_50_LOT: &str = "KET2291";
pub const KETAMINE_100_LOT: &str = "KX2207";
pub const SPRAVATO_LOT: &str = "24KX117";
pub const LOZENGE_LOT: &str = "KRD-2611-04";

async fn actor(state: &AppState, role: &str) -> Result<CurrentUser, AppError> {
    let email = kapstone_domain::Email::parse(&format!("{role}@{}", super::demo::DEMO_DOMAIN))?;
    let row = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
    demo_actor(&row)
}

fn rfc3339(t: UtcTs) -> String {
    t.rfc3339()
}

fn days_ago(now: UtcTs, days: i64, hour_offset_min: i64) -> UtcTs {
    UtcTs::from_unix_micros(now.unix_micros() - days * 86_400_000_000 + hour_offset_min * 60_000_000)
}

fn supplier() -> RegistrantInput {
    RegistrantInput {
        name: "Synthetic Pharma Supply".into(),
        address: "1 Warehouse Way, Springfield, ST 00000".into(),
        dea_number: "RS1234563".into(),
    }
}

pub async fn seed_ledger(state: &AppState) -> Result<(), AppError> {
    let admin = actor(state, "admin").await?;
    let nurse = actor(state, "nurse").await?;
    let prescriber = actor(state, "prescriber").await?;
    let location = st::locations(&state.db, nurse.clinic).await?.into_iter().next().ok_or(AppError::NotFound)?;
    let place = place(state, &nurse, location.id).await?;
    let now = UtcTs::now();
    let local_today = place.date_of(now);
    let utc_today = crate::app::scheduling::to_jiff(now).to_zoned(jiff::tz::TimeZone::UTC).date();

    save_registration(
        state,
        &admin,
        location.id,
        RegistrationInput {
            dea_number: "BA1234563".into(),
            registrant: "Dr. Riley Prescriber, Harbour Light KAP Clinic".into(),
            address: "1200 Harbour Light Way, Suite 300, Springfield, ST 00000".into(),
            phone: "+1 555 010 0100".into(),
            contact: "Dr. Riley Prescriber".into(),
            storage_note:
                "Double-locked steel cabinet bolted to the wall, medication room 2; keys with the nurse on duty".into(),
            waste_witness_required: Some(true),
            retention_years: Some(2),
            holidays: None,
        },
    )
    .await?;

    let product = async |name: &str, substance, ndc: &str, form| {
        add_product(state, &admin, ProductInput { name: name.into(), substance, ndc: ndc.into(), form }).await
    };
    let mg = Micrograms::from_mg;
    let vial_50 = product(
        "Ketamine HCl injection 50 mg/mL, 10 mL vial",
        Substance::Ketamine,
        "0409-2051-05",
        ProductForm::Solution { strength_ug_per_ml: mg(50), ml_per_container: Microlitres::from_ml(10) },
    )
    .await?;
    let vial_100 = product(
        "Ketamine HCl injection 100 mg/mL, 5 mL vial",
        Substance::Ketamine,
        "12345-678-90",
        ProductForm::Solution { strength_ug_per_ml: mg(100), ml_per_container: Microlitres::from_ml(5) },
    )
    .await?;
    let spravato = product(
        "SPRAVATO 28 mg nasal spray, kit of 2 devices (56 mg)",
        Substance::Esketamine,
        "50458-028-02",
        ProductForm::DeviceKit { devices_per_container: 2, ug_per_device: mg(28) },
    )
    .await?;
    let lozenge = product(
        "Ketamine HCl 100 mg rapid-dissolve tablet (compounded), bottle of 30",
        Substance::Ketamine,
        "99999-100-30",
        ProductForm::Tablets { tablets_per_container: 30, ug_per_tablet: mg(100) },
    )
    .await?;

    // The initial inventory, taken when the location started: nothing on hand yet.
    let started = days_ago(now, 23 * 30 + 10, 0);
    count(
        state,
        &nurse,
        CountInput {
            location: location.id,
            kind: InventoryKind::Initial,
            taken_at: TakenAt::OpeningOfBusiness,
            lines: Vec::new(),
            counted_at: Some(rfc3339(started)),
        },
    )
    .await?;

    // A month ago: the stock arrives.
    let received = days_ago(now, 35, 0);
    let utc_next_year = utc_today.checked_add(1.year()).unwrap_or(utc_today);
    let local_next_year = local_today.checked_add(1.year()).unwrap_or(local_today);
    let fixed = |y, m, d| jiff::civil::date(y, m, d);
    for (p, lot, expiry, containers, invoice) in [
        (&vial_50, KETAMINE_50_LOT, utc_next_year, 10, "INV-SPS-10431"),
        (&vial_100, KETAMINE_100_LOT, fixed(2031, 6, 30), 4, "INV-SPS-10431"),
        (&spravato, SPRAVATO_LOT, fixed(2030, 1, 31), 12, "INV-SPS-10432"),
        (&lozenge, LOZENGE_LOT, local_next_year, 3, "INV-CPH-2207"),
    ] {
        receive(
            state,
            &nurse,
            ReceiptInput {
                stock: Stock { location: location.id, product: p.id.as_uuid(), lot: lot.into() },
                expiry,
                supplier: supplier(),
                containers,
                invoice: Some(invoice.into()),
                received_at: Some(rfc3339(received)),
            },
        )
        .await?;
    }

    history(state, &nurse, &prescriber, location.id, now, [&vial_50, &spravato, &lozenge]).await?;

    // Two days ago: the monthly count of the 50 mg/mL vials finds 10 mg less than the ledger.
    let expected = kapstone_store::ledger::balances(&state.db, nurse.clinic.as_uuid(), location.id)
        .await?
        .into_iter()
        .find(|(product, lot, _)| *product == vial_50.id.as_uuid() && lot == KETAMINE_50_LOT)
        .map_or(Micrograms::ZERO, |(_, _, ug)| Micrograms::from_ug(ug));
    let counted = expected.saturating_sub(mg(10)).ug().max(0);
    let per_vial = mg(500).ug();
    let full = u32::try_from(counted / per_vial).unwrap_or(0);
    let opened_ug = counted % per_vial;
    let opened = if opened_ug > 0 {
        // 50 mg/mL: 1 mg is 20 µL.
        vec![OpenedContainer { measure: Measure::Volume(Microlitres::from_ul(opened_ug / 50)), estimated: false }]
    } else {
        Vec::new()
    };
    count(
        state,
        &nurse,
        CountInput {
            location: location.id,
            kind: InventoryKind::Count,
            taken_at: TakenAt::CloseOfBusiness,
            lines: vec![CountLine {
                product: vial_50.id,
                lot: LotNumber::parse("lot", KETAMINE_50_LOT)?,
                full_containers: full,
                opened,
            }],
            counted_at: Some(rfc3339(days_ago(now, 2, 0))),
        },
    )
    .await?;
    Ok(())
}

/// A month of administrations: every other day a session drew, gave and (for a vial) wasted the
/// rest with the prescriber as witness.
async fn history(
    state: &AppState,
    nurse: &CurrentUser,
    prescriber: &CurrentUser,
    location: uuid::Uuid,
    now: UtcTs,
    [vial_50, spravato, lozenge]: [&CsProduct; 3],
) -> Result<(), AppError> {
    let patients = kapstone_store::patients::list(&state.db, nurse.clinic, 12, 0).await?;
    let place = place(state, nurse, location).await?;
    let mut tx = state.db.begin().await?;
    let mut w = Writer::start(&mut tx, nurse, place).await?;
    let by = person(nurse);
    let recorded_at = w.now;
    for (i, day) in (3..=31).rev().step_by(2).enumerate() {
        let Some(p) = patients.get(i % patients.len().max(1)) else { break };
        let patient = PatientOnRecord::new(
            PatientId::from_uuid(p.id),
            &format!("{} {}", p.given_name, p.family_name),
            p.address.as_deref(),
        )?;
        let session = DosingSessionId::new();
        let at = days_ago(now, day, 0);
        let (product, lot, drawn, given, route, waste): (&CsProduct, &str, Measure, Micrograms, &str, bool) =
            match i % 3 {
                0 => (
                    vial_50,
                    KETAMINE_50_LOT,
                    Measure::Volume(Microlitres::from_ml(1)),
                    Micrograms::from_mg(40),
                    "78421000",
                    true,
                ),
                1 => (spravato, SPRAVATO_LOT, Measure::Devices(2), Micrograms::from_mg(56), "46713006", false),
                _ => (lozenge, LOZENGE_LOT, Measure::Tablets(3), Micrograms::from_mg(300), "37839007", false),
            };
        let lot = LotNumber::parse("lot", lot)?;
        let header = |minutes: i64| EntryHeader {
            location: LocationId::from_uuid(location),
            product: product.id,
            lot: lot.clone(),
            occurred_at: UtcTs::from_unix_micros(at.unix_micros() + minutes * 60_000_000),
            recorded_at,
            recorded_by: by.clone(),
        };
        let amount = drawn.amount("drawn", &product.form)?;
        let draw = header(0).entry(EntryDetail::Draw(Draw { session, measure: drawn, amount }));
        let draw_id = draw.id;
        w.push(&mut tx, draw).await?;
        w.push(
            &mut tx,
            header(40).entry(EntryDetail::Administration(AdministrationEntry {
                draw: draw_id,
                session,
                patient,
                administered_by: by.clone(),
                amount: given,
                route_snomed: route.into(),
            })),
        )
        .await?;
        if waste {
            let rest = amount.saturating_sub(given);
            w.push(
                &mut tx,
                header(42).entry(EntryDetail::Waste(Waste {
                    draw: draw_id,
                    measure: kapstone_domain::ledger::dispensing::measure_for(rest, &product.form),
                    amount: rest,
                    method: "Expelled into a drug-waste container with an activated-charcoal neutraliser".into(),
                    witness: Some(Witness {
                        user: prescriber.id,
                        role: prescriber.role,
                        name: prescriber.name.clone(),
                        authenticated_at: UtcTs::from_unix_micros(at.unix_micros() + 42 * 60_000_000),
                    }),
                })),
            )
            .await?;
        }
    }
    let stored = w.write(&mut tx).await?;
    kapstone_store::audit::append(&mut tx, &recorded_event(nurse, location, &stored)).await?;
    tx.commit().await?;
    Ok(())
}
