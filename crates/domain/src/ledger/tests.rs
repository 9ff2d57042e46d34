//! The spec's test vectors (KAP-SPEC 12.8, TV-DEA-1..7), each under its own name, and the
//! refusals of the ledger, each checked for the field it names.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, date};
use uuid::Uuid;

use super::balance::CheckContext;
use super::chain::{LedgerChainBreak, StoredLedgerEntry, verify};
use super::discrepancy::{
    Deadline, Discrepancy, DiscrepancyContext, DiscrepancyEvent, DiscrepancyRecord, LossKind, Origin,
    SignificanceFactor, check_opening, loss_deadlines,
};
use super::dispensing::{Given, WasteAtAdministration, draw_for_administration, settle_draw};
use super::entry::EntryHeader;
use super::inventory::{CountLine, check_inventory, count_detail, next_biennial_due};
use super::registry::Registrant;
use super::reports::{form_41, transaction_line};
use super::*;
use crate::audit::Hash;
use crate::ids::{CsProductId, DosingSessionId, InventoryId, LedgerEntryId, LocationId};
use crate::session::Administration;
use crate::{PatientId, Role, UserId, UtcTs};

// ---------------------------------------------------------------------------------------------
// Fixtures: a location with one lot of 50 mg/mL, 10 mL ketamine vials; synthetic people.

const NURSE_CHO: u128 = 3;
const NURSE_DIAZ: u128 = 4;
const DR_ADEYEMI: u128 = 1;
const THERAPIST_EVANS: u128 = 5;
const ADMIN_GRAY: u128 = 7;

fn person(n: u128, role: Role, name: &str) -> Person {
    Person { user: UserId::from_uuid(Uuid::from_u128(n)), role, name: name.into() }
}
fn nurse() -> Person {
    person(NURSE_CHO, Role::Nurse, "Nurse Cho")
}
fn second_nurse() -> Person {
    person(NURSE_DIAZ, Role::Nurse, "Nurse Diaz")
}
fn prescriber() -> Person {
    person(DR_ADEYEMI, Role::Prescriber, "Dr Adeyemi")
}
fn therapist() -> Person {
    person(THERAPIST_EVANS, Role::Therapist, "Evans")
}
fn admin() -> Person {
    person(ADMIN_GRAY, Role::Admin, "Gray")
}

fn witness(p: &Person, at: UtcTs) -> Witness {
    Witness { user: p.user, role: p.role, name: p.name.clone(), authenticated_at: at }
}

/// 2025-06-`day` at hh:00 UTC.
fn on(day: i8, h: i8) -> UtcTs {
    let ts = date(2025, 6, day).at(h, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp());
    UtcTs::from_unix_micros(ts.map(|t| t.as_microsecond()).unwrap_or(0))
}

fn mg(n: i64) -> Micrograms {
    Micrograms::from_mg(n)
}

fn vial_50() -> CsProduct {
    CsProduct {
        id: CsProductId::from_uuid(Uuid::from_u128(100)),
        name: "Ketamine HCl injection 50 mg/mL, 10 mL vial".into(),
        substance: Substance::Ketamine,
        ndc: Ndc::parse("ndc", "0409-2051-05").unwrap(),
        form: ProductForm::Solution { strength_ug_per_ml: mg(50), ml_per_container: Microlitres::from_ml(10) },
    }
}

fn supplier() -> Registrant {
    Registrant {
        name: "Synthetic Pharma Supply".into(),
        address: "1 Warehouse Way, Springfield".into(),
        dea_number: DeaNumber::parse("supplier.dea_number", "RS1234563").unwrap(),
    }
}

fn registration(location: LocationId) -> LocationRegistration {
    LocationRegistration {
        location,
        dea_number: DeaNumber::parse("dea_number", "BA1234563").unwrap(),
        registrant: "Dr Adeyemi, Demo KAP Clinic".into(),
        address: "10 Demo Street, Springfield".into(),
        phone: "555-0100".into(),
        contact: "Dr Adeyemi".into(),
        storage_note: "Double-locked cabinet, room 2".into(),
    }
}

/// One lot's ledger being written: each append is checked against the fold of the entries so far.
struct Ledger {
    location: LocationId,
    product: CsProduct,
    lot: Lot,
    settings: LedgerSettings,
    today: Date,
    now: UtcTs,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    fn new() -> Self {
        let product = vial_50();
        Self {
            location: LocationId::from_uuid(Uuid::from_u128(200)),
            lot: Lot {
                product: product.id,
                number: LotNumber::parse("lot", "KX2231").unwrap(),
                expiry: date(2026, 12, 31),
            },
            product,
            settings: LedgerSettings::default(),
            today: date(2025, 6, 30),
            now: on(30, 18),
            entries: Vec::new(),
        }
    }

    fn header(&self, by: Person, at: UtcTs) -> EntryHeader {
        EntryHeader {
            location: self.location,
            product: self.product.id,
            lot: self.lot.number.clone(),
            occurred_at: at,
            recorded_at: at,
            recorded_by: by,
        }
    }

    fn bucket(&self) -> Bucket {
        Bucket::fold(&self.entries)
    }

    fn ctx(&self) -> CheckContext<'_> {
        CheckContext {
            product: &self.product,
            lot: &self.lot,
            today: self.today,
            now: self.now,
            settings: &self.settings,
        }
    }

    fn append(&mut self, e: LedgerEntry) -> Result<LedgerEntryId, Refusal> {
        self.bucket().check(&e, &self.ctx())?;
        let id = e.id;
        self.entries.push(e);
        Ok(id)
    }

    #[track_caller]
    fn ok(&mut self, e: LedgerEntry) -> LedgerEntryId {
        let kind = e.kind();
        self.append(e).unwrap_or_else(|r| panic!("{kind:?} refused: {r:?}"))
    }

    #[track_caller]
    fn refused(&mut self, e: LedgerEntry) -> Refusal {
        let before = self.entries.len();
        let r = self.append(e).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(self.entries.len(), before, "a refusal leaves the ledger unchanged");
        r
    }

    fn count_line(&self, full: u32, opened: Vec<OpenedContainer>) -> CountLine {
        CountLine { product: self.product.id, lot: self.lot.number.clone(), full_containers: full, opened }
    }

    fn count(&self, kind: InventoryKind, at: UtcTs, full: u32, opened: Vec<OpenedContainer>) -> LedgerEntry {
        let line = self.count_line(full, opened);
        let detail =
            count_detail(InventoryId::new(), kind, TakenAt::CloseOfBusiness, &line, &self.product, &self.bucket())
                .unwrap();
        self.header(nurse(), at).entry(EntryDetail::InventoryCount(detail))
    }

    fn receipt(&self, containers: u32, at: UtcTs) -> LedgerEntry {
        self.header(nurse(), at).entry(EntryDetail::Receipt(Receipt {
            supplier: supplier(),
            containers,
            amount: mg(500 * i64::from(containers)),
            invoice: Some("INV-2025-0601".into()),
        }))
    }

    fn draw(&self, session: DosingSessionId, ml_thousandths: i64, at: UtcTs) -> LedgerEntry {
        let measure = Measure::Volume(Microlitres::from_ul(ml_thousandths));
        let amount = measure.amount("measure", &self.product.form).unwrap();
        self.header(nurse(), at).entry(EntryDetail::Draw(Draw { session, measure, amount }))
    }

    fn administration(
        &self,
        draw: LedgerEntryId,
        session: DosingSessionId,
        amount: Micrograms,
        at: UtcTs,
    ) -> LedgerEntry {
        self.header(nurse(), at).entry(EntryDetail::Administration(AdministrationEntry {
            draw,
            session,
            patient: patient(),
            administered_by: nurse(),
            amount,
            route_snomed: "47625008".into(),
        }))
    }

    fn waste(&self, draw: LedgerEntryId, amount: Micrograms, witness: Option<Witness>, at: UtcTs) -> LedgerEntry {
        self.header(nurse(), at).entry(EntryDetail::Waste(Waste {
            draw,
            measure: Measure::Amount(amount),
            amount,
            method: "expelled into the drug-waste container".into(),
            witness,
        }))
    }

    /// A whole session: draw `drawn_mg` as mL of 50 mg/mL, give `given`, waste the rest witnessed.
    fn session(&mut self, drawn_mg: i64, given: i64, at: UtcTs) {
        let session = DosingSessionId::new();
        let draw = self.ok(self.draw(session, drawn_mg * 20, at));
        self.ok(self.administration(draw, session, mg(given), at));
        if drawn_mg > given {
            let w = Some(witness(&second_nurse(), at));
            self.ok(self.waste(draw, mg(drawn_mg - given), w, at));
        }
    }

    fn adjustment(&self, direction: Direction, amount: Micrograms, at: UtcTs) -> LedgerEntry {
        self.header(prescriber(), at).entry(EntryDetail::Adjustment(Adjustment {
            direction,
            amount,
            reason: "vial dropped and broken; witnessed".into(),
        }))
    }

    fn reversal(&self, target: LedgerEntryId, at: UtcTs) -> LedgerEntry {
        self.header(nurse(), at)
            .entry(EntryDetail::Reversal(Reversal { reverses: target, reason: "entered twice".into() }))
    }

    fn destruction(&self, witnesses: Vec<Witness>, at: UtcTs) -> LedgerEntry {
        self.header(prescriber(), at).entry(EntryDetail::Destruction(Destruction {
            reason: DestructionReason::Expired,
            full_containers: 1,
            partial: None,
            amount: mg(500),
            method: "chemical digestion kit (non-retrievable)".into(),
            witnesses,
        }))
    }
}

fn patient() -> PatientOnRecord {
    PatientOnRecord::new(
        PatientId::from_uuid(Uuid::from_u128(900)),
        "Sam Synthetic",
        Some("22 Example Road, Springfield"),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// KAP-SPEC 12.8 test vectors.

#[test]
fn tv_dea_1_loss_discovered_on_a_monday() {
    let d = loss_deadlines(date(2025, 6, 2), &BTreeSet::new());
    assert_eq!(d.notice_due, date(2025, 6, 3), "1 business day");
    assert_eq!(d.form_106_due, date(2025, 7, 17), "45 calendar days");
}

#[test]
fn tv_dea_2_loss_discovered_on_a_friday() {
    let d = loss_deadlines(date(2025, 6, 6), &BTreeSet::new());
    assert_eq!(d.notice_due, date(2025, 6, 9), "the next business day is Monday");
    assert_eq!(d.form_106_due, date(2025, 7, 21));
    // A holiday the clinic lists moves the notice on by a day; Form 106 counts calendar days.
    let holidays = BTreeSet::from([date(2025, 6, 9)]);
    let d = loss_deadlines(date(2025, 6, 6), &holidays);
    assert_eq!((d.notice_due, d.form_106_due), (date(2025, 6, 10), date(2025, 7, 21)));
}

#[test]
fn tv_dea_3_next_biennial_inventory_after_the_initial_one() {
    assert_eq!(next_biennial_due(date(2024, 3, 15)), date(2026, 3, 15));
}

#[test]
fn tv_dea_4_an_administration_record_is_kept_two_years() {
    let federal = RetentionPolicy::default();
    let record = date(2025, 1, 10);
    assert_eq!(federal.keep_until(record), date(2027, 1, 10));
    assert!(!federal.may_purge(record, date(2027, 1, 9)));
    assert!(federal.may_purge(record, date(2027, 1, 10)));
    // A state may extend it, never shorten it.
    let state = RetentionPolicy::new(5).unwrap();
    assert!(!state.may_purge(record, date(2027, 1, 10)));
    assert_eq!(RetentionPolicy::new(1).map_err(|e| e.field), Err("retention_years"));
    assert!(serde_json::from_str::<RetentionPolicy>("1").is_err(), "stored settings cannot go below the floor");
}

#[test]
fn tv_dea_5_a_count_short_of_the_ledger_opens_a_discrepancy() {
    let mut l = Ledger::new();
    // Opening inventory: 10 vials × 10 mL of 50 mg/mL = 5,000 mg.
    let opening = l.count(InventoryKind::Initial, on(1, 8), 10, vec![]);
    l.ok(opening);
    assert_eq!(l.bucket().balance(), mg(5000));
    // Receipt: +5 vials = 2,500 mg.
    l.ok(l.receipt(5, on(2, 9)));
    // 66 sessions given a whole 1 mL (50 mg) and 4 drawn 50 mg, given 40 mg, 10 mg wasted:
    // administered 3,300 + 160 = 3,460 mg; wasted 40 mg.
    for i in 0..70 {
        let day = 3 + (i / 3) as i8;
        if i < 66 {
            l.session(50, 50, on(day, 10));
        } else {
            l.session(50, 40, on(day, 10));
        }
    }
    let r = Reconciliation::of(&l.entries);
    assert_eq!(
        (r.opening, r.receipts, r.administered, r.wasted, r.in_use),
        (mg(5000), mg(2500), mg(3460), mg(40), Micrograms::ZERO)
    );
    assert_eq!(r.expected, mg(4000), "5,000 + 2,500 − 3,460 − 40");
    assert_eq!(l.bucket().balance(), r.expected, "the derived balance is the spec's expected on hand");

    // Physical count 3,990 mg: 7 full vials and an opened one estimated at 9.8 mL.
    let opened = vec![OpenedContainer { measure: Measure::Volume(Microlitres::from_ul(9_800)), estimated: true }];
    let count = l.count(InventoryKind::Count, on(30, 17), 7, opened);
    let count_id = l.ok(count);
    let entry = l.entries.iter().find(|e| e.id == count_id).unwrap();
    let origin = Origin::from_count(entry).expect("a discrepancy opens");
    assert_eq!(origin.difference(), Some(Micrograms::from_mg(-10)));
    assert_eq!(l.bucket().balance(), mg(3990), "the balance carries on from what was counted");

    // The investigation is open until the registrant decides its significance.
    let opened = DiscrepancyRecord {
        at: on(30, 17),
        by: nurse(),
        event: DiscrepancyEvent::Opened { origin, found_on: date(2025, 6, 30) },
    };
    assert_eq!(check_opening(&opened, l.today), Ok(()));
    let d = Discrepancy::replay(&[opened]).unwrap();
    assert!(d.is_open());
    let ctx = DiscrepancyContext { today: l.today, holidays: &BTreeSet::new(), explained: Micrograms::ZERO };
    let close = DiscrepancyRecord {
        at: on(30, 18),
        by: prescriber(),
        event: DiscrepancyEvent::Closed { summary: "done".into() },
    };
    assert_eq!(d.decide(&close, &ctx).map_err(|r| r.field), Err("judgement"));
}

#[test]
fn tv_dea_6_iv_session_drew_50_gave_40_and_wasted_10_witnessed_not_form_41() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    let session = DosingSessionId::new();
    let administration = Administration {
        product: "Ketamine HCl injection 50 mg/mL vial".into(),
        ndc: Some("0409-2051-05".into()),
        lot: "KX2231".into(),
        expiry: date(2026, 12, 31),
        dose_mg: 40.0,
        route_snomed: "47625008".into(),
    };
    // Drew 1 mL (50 mg) for the 40 mg dose of TV-IV-1.
    let drawn = Measure::Volume(Microlitres::from_ml(1));
    let draw = draw_for_administration(&administration, session, &l.product, &l.lot, drawn, l.today).unwrap();
    assert_eq!(draw.amount, mg(50));
    let draw_entry = l.header(nurse(), on(2, 10)).entry(EntryDetail::Draw(draw.clone()));
    let draw_id = l.ok(draw_entry);

    let given = Given {
        session,
        patient: patient(),
        administered_by: nurse(),
        amount: Micrograms::from_mg_f64("dose_mg", administration.dose_mg).unwrap(),
        route_snomed: administration.route_snomed.clone(),
    };
    let waste = WasteAtAdministration {
        method: "expelled into the drug-waste container".into(),
        witness: Some(witness(&second_nurse(), on(2, 11))),
    };
    let settled = settle_draw(draw_id, &draw, &l.product, given, Some(waste)).unwrap();
    assert_eq!(settled.administration.amount, mg(40));
    let w = settled.waste.clone().unwrap();
    assert_eq!((w.amount, w.measure), (mg(10), Measure::Volume(Microlitres::from_ul(200))), "0.2 mL");
    l.ok(l.header(nurse(), on(2, 11)).entry(EntryDetail::Administration(settled.administration)));
    l.ok(l.header(nurse(), on(2, 11)).entry(EntryDetail::Waste(w.clone())));

    // Two identities in the dispensing record: who gave it and who witnessed the waste.
    assert_ne!(Some(nurse().user), w.witness.as_ref().map(|x| x.user));
    assert!(!EntryKind::Waste.is_form_41(), "wastage at administration is not a Form 41 event");
    let waste_entry = l.entries.last().unwrap();
    assert_eq!(form_41(waste_entry, &l.product, &registration(l.location)), None);
    assert!(l.bucket().open_draws().is_empty(), "the draw is settled");
    assert_eq!(l.bucket().balance(), mg(450));
    let r = Reconciliation::of(&l.entries);
    assert_eq!((r.administered, r.wasted, r.expected), (mg(40), mg(10), mg(450)));
}

#[test]
fn tv_dea_7_expired_vial_destroyed_on_site_needs_form_41_with_two_witnesses() {
    let mut l = Ledger::new();
    l.ok(l.receipt(2, on(1, 9)));
    l.lot.expiry = date(2025, 6, 15);
    let at = on(30, 15);
    // Missing the second witness: refused, and nothing is recorded.
    let one = l.destruction(vec![witness(&nurse(), at)], at);
    let r = l.refused(one);
    assert_eq!((r.code, r.field), ("form_41", "witnesses"));
    let none = l.destruction(vec![], at);
    assert_eq!(l.refused(none).field, "witnesses");
    let same_twice = l.destruction(vec![witness(&nurse(), at), witness(&nurse(), at)], at);
    assert_eq!(l.refused(same_twice).field, "witnesses[1]");

    let id = l.ok(l.destruction(vec![witness(&nurse(), at), witness(&second_nurse(), at)], at));
    let entry = l.entries.iter().find(|e| e.id == id).unwrap();
    let form = form_41(entry, &l.product, &registration(l.location)).expect("a Form 41 record");
    assert_eq!(form.ndc.as_str(), "0409-2051-05");
    assert_eq!(form.batch.as_str(), "KX2231");
    assert_eq!(form.strength_and_form, "50 mg/mL solution, 10 mL per container");
    assert_eq!((form.full_packages, form.total_destroyed), (1, mg(500)));
    assert_eq!(form.date, at);
    assert_eq!(form.method, "chemical digestion kit (non-retrievable)");
    assert_eq!(form.location, "10 Demo Street, Springfield");
    assert_eq!(form.witnesses, vec!["Nurse Cho".to_owned(), "Nurse Diaz".to_owned()]);
    assert_eq!(form.dea_number.as_str(), "BA1234563");
    assert_eq!(l.bucket().balance(), mg(500));
}

// ---------------------------------------------------------------------------------------------
// Refusals: each names its field, and leaves the ledger as it was.

#[test]
fn a_draw_larger_than_the_lot_balance_is_refused() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    let r = l.refused(l.draw(DosingSessionId::new(), 10_001, on(2, 9)));
    assert_eq!((r.code, r.field), ("insufficient_stock", "measure"));
    l.ok(l.draw(DosingSessionId::new(), 10_000, on(2, 9)));
    assert_eq!(l.bucket().balance(), Micrograms::ZERO);
}

#[test]
fn destruction_transfer_and_adjustment_cannot_take_stock_below_zero() {
    let mut l = Ledger::new();
    let at = on(2, 9);
    let r = l.refused(l.destruction(vec![witness(&nurse(), at), witness(&second_nurse(), at)], at));
    assert_eq!((r.code, r.field), ("insufficient_stock", "full_containers"));
    let r = l.refused(l.adjustment(Direction::Decrease, mg(1), at));
    assert_eq!((r.code, r.field), ("insufficient_stock", "amount"));
    let transfer = l.header(nurse(), at).entry(EntryDetail::TransferOut(TransferOut {
        purpose: TransferPurpose::ReverseDistributor,
        recipient: supplier(),
        measure: Measure::Containers(1),
        amount: mg(500),
        document: "RD-7781".into(),
    }));
    assert_eq!(l.refused(transfer).field, "measure");
    // An increase needs no stock.
    l.ok(l.adjustment(Direction::Increase, mg(5), at));
}

#[test]
fn zero_and_mismatched_quantities_are_refused() {
    let mut l = Ledger::new();
    let at = on(2, 9);
    let zero = l.header(nurse(), at).entry(EntryDetail::Receipt(Receipt {
        supplier: supplier(),
        containers: 0,
        amount: Micrograms::ZERO,
        invoice: None,
    }));
    assert_eq!(l.refused(zero).field, "containers");
    let wrong_total = l.header(nurse(), at).entry(EntryDetail::Receipt(Receipt {
        supplier: supplier(),
        containers: 2,
        amount: mg(999),
        invoice: None,
    }));
    assert_eq!(l.refused(wrong_total).field, "containers");
    l.ok(l.receipt(1, at));
    let no_volume = l.header(nurse(), at).entry(EntryDetail::Draw(Draw {
        session: DosingSessionId::new(),
        measure: Measure::Volume(Microlitres::from_ul(0)),
        amount: Micrograms::ZERO,
    }));
    assert_eq!(l.refused(no_volume).field, "measure");
    let devices_of_a_vial = l.header(nurse(), at).entry(EntryDetail::Draw(Draw {
        session: DosingSessionId::new(),
        measure: Measure::Devices(1),
        amount: mg(28),
    }));
    assert_eq!(l.refused(devices_of_a_vial).field, "measure");
    let zero_adjustment = l.adjustment(Direction::Increase, Micrograms::ZERO, at);
    assert_eq!(l.refused(zero_adjustment).field, "amount");
    let no_address = Registrant { address: " ".into(), ..supplier() };
    let receipt = l.header(nurse(), at).entry(EntryDetail::Receipt(Receipt {
        supplier: no_address,
        containers: 1,
        amount: mg(500),
        invoice: None,
    }));
    assert_eq!(l.refused(receipt).field, "supplier.address");
}

#[test]
fn an_expired_lot_cannot_be_drawn_from() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    l.lot.expiry = date(2025, 6, 29);
    let r = l.refused(l.draw(DosingSessionId::new(), 1000, on(30, 9)));
    assert_eq!((r.code, r.field), ("expired_lot", "lot"));
    // On its expiry date it may still be used, as the administration record allows.
    l.lot.expiry = l.today;
    l.ok(l.draw(DosingSessionId::new(), 1000, on(30, 9)));
}

#[test]
fn the_draw_for_an_administration_must_match_its_record() {
    let l = Ledger::new();
    let base = Administration {
        product: "Ketamine HCl injection 50 mg/mL vial".into(),
        ndc: Some("0409-2051-05".into()),
        lot: "KX2231".into(),
        expiry: date(2026, 12, 31),
        dose_mg: 40.0,
        route_snomed: "47625008".into(),
    };
    let s = DosingSessionId::new();
    let one_ml = Measure::Volume(Microlitres::from_ml(1));
    let field = |a: &Administration, m: Measure, lot: &Lot| {
        draw_for_administration(a, s, &l.product, lot, m, l.today).err().map(|r| r.field)
    };
    assert_eq!(field(&base, one_ml, &l.lot), None);
    assert_eq!(field(&Administration { lot: "OTHER1".into(), ..base.clone() }, one_ml, &l.lot), Some("lot"));
    assert_eq!(
        field(&Administration { ndc: Some("50458-028-02".into()), ..base.clone() }, one_ml, &l.lot),
        Some("ndc")
    );
    assert_eq!(field(&Administration { expiry: date(2027, 1, 31), ..base.clone() }, one_ml, &l.lot), Some("expiry"));
    assert_eq!(field(&base, Measure::Volume(Microlitres::from_ul(700)), &l.lot), Some("drawn"), "35 mg < 40 mg");
    let expired = Lot { expiry: date(2025, 6, 1), ..l.lot.clone() };
    let expired_record = Administration { expiry: date(2025, 6, 1), ..base.clone() };
    assert_eq!(field(&expired_record, one_ml, &expired), Some("lot"));
}

#[test]
fn an_administration_cannot_exceed_what_is_left_of_its_draw() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    let s = DosingSessionId::new();
    let draw = l.ok(l.draw(s, 1000, on(2, 9)));
    let r = l.refused(l.administration(draw, s, mg(51), on(2, 10)));
    assert_eq!((r.code, r.field), ("exceeds_draw", "amount"));
    let r = l.refused(l.administration(draw, DosingSessionId::new(), mg(40), on(2, 10)));
    assert_eq!(r.field, "session");
    let r = l.refused(l.administration(LedgerEntryId::new(), s, mg(40), on(2, 10)));
    assert_eq!(r.field, "draw");
    let r = l.refused(l.administration(draw, s, mg(40), on(2, 8)));
    assert_eq!(r.field, "occurred_at", "given before it was drawn");
    l.ok(l.administration(draw, s, mg(40), on(2, 10)));
    let r = l.refused(l.waste(draw, mg(11), Some(witness(&second_nurse(), on(2, 10))), on(2, 10)));
    assert_eq!((r.code, r.field), ("exceeds_draw", "measure"));
    assert_eq!(l.bucket().open_draws().first().map(|d| d.remainder), Some(mg(10)));
}

#[test]
fn waste_needs_a_licensed_second_person_who_did_not_give_the_dose() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    let s = DosingSessionId::new();
    let draw = l.ok(l.draw(s, 1000, on(2, 9)));
    // The prescriber gave the dose; the nurse records the waste.
    let mut given = l.administration(draw, s, mg(40), on(2, 10));
    if let EntryDetail::Administration(a) = &mut given.detail {
        a.administered_by = prescriber();
    }
    l.ok(given);
    let at = on(2, 10);
    let cases = [
        (None, "witness"),
        (Some(witness(&nurse(), at)), "witness"),      // the person recording
        (Some(witness(&prescriber(), at)), "witness"), // the person who gave the dose
        (Some(witness(&therapist(), at)), "witness"),  // not licensed for this
        (Some(witness(&admin(), at)), "witness"),
    ];
    for (w, field) in cases {
        let who = w.as_ref().map(|x| x.name.clone());
        let r = l.refused(l.waste(draw, mg(10), w, at));
        assert_eq!((r.code, r.field), ("witness", field), "{who:?}");
    }
    l.ok(l.waste(draw, mg(10), Some(witness(&second_nurse(), at)), at));
}

#[test]
fn where_the_state_does_not_require_a_waste_witness_none_is_needed() {
    let mut l = Ledger::new();
    l.settings.waste_witness_required = false;
    l.ok(l.receipt(1, on(1, 9)));
    let s = DosingSessionId::new();
    let draw = l.ok(l.draw(s, 1000, on(2, 9)));
    l.ok(l.administration(draw, s, mg(40), on(2, 10)));
    l.ok(l.waste(draw, mg(10), None, on(2, 10)));
}

#[test]
fn only_licensed_roles_record_and_only_as_themselves() {
    let mut l = Ledger::new();
    for who in [therapist(), admin(), person(8, Role::Frontdesk, "Farah"), person(9, Role::Patient, "P")] {
        let mut e = l.receipt(1, on(1, 9));
        e.recorded_by = who.clone();
        let r = l.refused(e);
        assert_eq!((r.code, r.field), ("role", "recorded_by"), "{:?}", who.role);
    }
    l.ok(l.receipt(1, on(1, 9)));
    let s = DosingSessionId::new();
    let draw = l.ok(l.draw(s, 1000, on(2, 9)));
    let mut by_therapist = l.administration(draw, s, mg(40), on(2, 10));
    if let EntryDetail::Administration(a) = &mut by_therapist.detail {
        a.administered_by = therapist();
    }
    assert_eq!(l.refused(by_therapist).field, "administered_by");
}

#[test]
fn records_carry_their_actual_date_never_a_future_one() {
    let mut l = Ledger::new();
    let r = l.refused(l.receipt(1, on(30, 19)));
    assert_eq!(r.field, "occurred_at");
    // A receipt entered a day late keeps the day it was received.
    let mut late = l.receipt(1, on(29, 9));
    late.recorded_at = on(30, 9);
    l.ok(late);
}

#[test]
fn an_administration_needs_the_patients_address() {
    let p = PatientId::new();
    assert_eq!(PatientOnRecord::new(p, "Sam Synthetic", None).map_err(|e| e.field), Err("patient.address"));
    assert_eq!(PatientOnRecord::new(p, "Sam Synthetic", Some("  ")).map_err(|e| e.field), Err("patient.address"));
    assert_eq!(PatientOnRecord::new(p, " ", Some("1 Road")).map_err(|e| e.field), Err("patient.name"));
}

#[test]
fn settling_a_draw_refuses_more_than_was_drawn_and_a_remainder_without_its_waste() {
    let l = Ledger::new();
    let s = DosingSessionId::new();
    let draw = Draw { session: s, measure: Measure::Volume(Microlitres::from_ml(1)), amount: mg(50) };
    let given = |amount| Given {
        session: s,
        patient: patient(),
        administered_by: nurse(),
        amount,
        route_snomed: "47625008".into(),
    };
    let r = settle_draw(LedgerEntryId::new(), &draw, &l.product, given(mg(60)), None).unwrap_err();
    assert_eq!(r.field, "administered");
    let r = settle_draw(LedgerEntryId::new(), &draw, &l.product, given(mg(40)), None).unwrap_err();
    assert_eq!(r.field, "waste.method");
    let all = settle_draw(LedgerEntryId::new(), &draw, &l.product, given(mg(50)), None).unwrap();
    assert_eq!(all.waste, None, "nothing left, nothing wasted");
}

// ---------------------------------------------------------------------------------------------
// Corrections are reversals.

#[test]
fn a_mistake_is_reversed_with_a_reason_never_edited() {
    let mut l = Ledger::new();
    let first = l.ok(l.receipt(2, on(1, 9)));
    let twice = l.ok(l.receipt(2, on(1, 9)));
    assert_eq!(l.bucket().balance(), mg(2000));
    let undo = l.ok(l.reversal(twice, on(1, 12)));
    assert_eq!(l.bucket().balance(), mg(1000));
    assert_eq!(l.entries.len(), 3, "the mistaken entry stays");
    // Not twice, not a reversal of a reversal, not without a reason.
    assert_eq!(l.refused(l.reversal(twice, on(1, 13))).field, "reverses");
    assert_eq!(l.refused(l.reversal(undo, on(1, 13))).field, "reverses");
    let mut silent = l.reversal(first, on(1, 13));
    if let EntryDetail::Reversal(r) = &mut silent.detail {
        r.reason = "  ".into();
    }
    assert_eq!(l.refused(silent).field, "reason");
    assert_eq!(l.refused(l.reversal(LedgerEntryId::new(), on(1, 13))).field, "reverses");
}

#[test]
fn reversing_a_receipt_whose_stock_is_gone_is_refused() {
    let mut l = Ledger::new();
    let receipt = l.ok(l.receipt(1, on(1, 9)));
    l.session(50, 50, on(2, 9));
    let r = l.refused(l.reversal(receipt, on(2, 12)));
    assert_eq!((r.code, r.field), ("insufficient_stock", "reverses"));
}

#[test]
fn a_draw_is_reversed_only_after_what_was_recorded_against_it() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    let s = DosingSessionId::new();
    let draw = l.ok(l.draw(s, 1000, on(2, 9)));
    let given = l.ok(l.administration(draw, s, mg(40), on(2, 10)));
    assert_eq!(l.refused(l.reversal(draw, on(2, 11))).field, "reverses");
    l.ok(l.reversal(given, on(2, 11)));
    assert_eq!(l.bucket().open_draws().first().map(|d| d.remainder), Some(mg(50)), "the draw is open again");
    l.ok(l.reversal(draw, on(2, 11)));
    assert_eq!(l.bucket().balance(), mg(500));
    assert!(l.bucket().open_draws().is_empty());
    let r = Reconciliation::of(&l.entries);
    assert_eq!((r.administered, r.in_use, r.expected), (Micrograms::ZERO, Micrograms::ZERO, mg(500)));
}

// ---------------------------------------------------------------------------------------------
// Counts, inventories and discrepancies.

#[test]
fn a_stale_or_misadded_count_is_refused() {
    let mut l = Ledger::new();
    l.ok(l.receipt(2, on(1, 9)));
    let stale = l.count(InventoryKind::Count, on(2, 17), 2, vec![]);
    l.ok(l.receipt(1, on(2, 10)));
    assert_eq!(l.refused(stale).field, "expected");
    let mut misadded = l.count(InventoryKind::Count, on(2, 17), 3, vec![]);
    if let EntryDetail::InventoryCount(c) = &mut misadded.detail {
        c.counted = mg(1);
    }
    assert_eq!(l.refused(misadded).field, "counted");
    let again = l.count(InventoryKind::Initial, on(2, 17), 3, vec![]);
    assert_eq!(l.refused(again).field, "kind", "the initial inventory comes first");
    let matching = l.count(InventoryKind::Count, on(2, 17), 3, vec![]);
    let id = l.ok(matching);
    let entry = l.entries.iter().find(|e| e.id == id).unwrap();
    assert_eq!(Origin::from_count(entry), None, "a count that matches opens nothing");
}

#[test]
fn a_receipt_found_missing_is_recorded_late_as_included_in_the_count_and_explains_it() {
    let mut l = Ledger::new();
    l.ok(l.count(InventoryKind::Initial, on(1, 8), 2, vec![]));
    // A receipt of 1 vial on the 2nd was never entered; the count on the 5th finds 1 vial too many.
    let count = l.count(InventoryKind::Count, on(5, 17), 3, vec![]);
    let count_id = l.ok(count);
    assert_eq!(l.bucket().balance(), mg(1500));
    let mut late = l.receipt(1, on(2, 9));
    late.recorded_at = on(6, 9);
    // Without saying it is included, it would count the vial twice: allowed, but wrong — so the
    // investigation records it as included in the count.
    late.included_in_count = Some(count_id);
    l.ok(late);
    assert_eq!(l.bucket().balance(), mg(1500), "the count already holds it");
    let explained = l.bucket().explained_by_later_entries(count_id);
    assert_eq!(explained, mg(500));
    let entry = l.entries.iter().find(|e| e.id == count_id).unwrap();
    let origin = Origin::from_count(entry).unwrap();
    let opened = DiscrepancyRecord {
        at: on(5, 17),
        by: nurse(),
        event: DiscrepancyEvent::Opened { origin, found_on: date(2025, 6, 5) },
    };
    let d = Discrepancy::replay(&[opened]).unwrap();
    assert_eq!(d.unexplained(explained), Some(Micrograms::ZERO));
    let ctx = DiscrepancyContext { today: l.today, holidays: &BTreeSet::new(), explained };
    let close = DiscrepancyRecord {
        at: on(6, 10),
        by: prescriber(),
        event: DiscrepancyEvent::Closed { summary: "receipt of 2 June entered late".into() },
    };
    assert_eq!(d.decide(&close, &ctx), Ok(()));

    // Included in a count only if it happened before it, and only in the latest count.
    let mut after = l.receipt(1, on(7, 9));
    after.included_in_count = Some(count_id);
    assert_eq!(l.refused(after).field, "included_in_count");
    let mut unknown = l.receipt(1, on(2, 9));
    unknown.included_in_count = Some(LedgerEntryId::new());
    assert_eq!(l.refused(unknown).field, "included_in_count");
}

#[test]
fn an_entry_older_than_the_last_count_is_reversed_as_included_in_it() {
    let mut l = Ledger::new();
    let wrong = l.ok(l.receipt(2, on(1, 9)));
    let count_id = l.ok(l.count(InventoryKind::Count, on(2, 17), 1, vec![]));
    let r = l.refused(l.reversal(wrong, on(3, 9)));
    assert_eq!(r.field, "included_in_count");
    let mut undo = l.reversal(wrong, on(3, 9));
    undo.included_in_count = Some(count_id);
    l.ok(undo);
    assert_eq!(l.bucket().balance(), mg(500), "the count already holds the truth");
    // An entry after the count is reversed in full, and cannot claim to be in the count.
    let later = l.ok(l.receipt(1, on(3, 10)));
    let mut claims = l.reversal(later, on(3, 11));
    claims.included_in_count = Some(count_id);
    assert_eq!(l.refused(claims).field, "included_in_count");
    l.ok(l.reversal(later, on(3, 11)));
    assert_eq!(l.bucket().balance(), mg(500));
}

#[test]
fn a_full_inventory_lists_every_lot_on_hand() {
    let mut l = Ledger::new();
    l.ok(l.receipt(2, on(1, 9)));
    let on_hand = balances(&l.entries);
    let other_lot = CountLine { lot: LotNumber::parse("lot", "ZZ9").unwrap(), ..l.count_line(0, vec![]) };
    let r = check_inventory(
        l.location,
        InventoryKind::Biennial,
        std::slice::from_ref(&other_lot),
        &on_hand,
        Some(date(2024, 1, 2)),
    );
    assert_eq!(r.map_err(|r| r.field), Err("lines"));
    let both = [other_lot.clone(), l.count_line(2, vec![])];
    assert_eq!(check_inventory(l.location, InventoryKind::Biennial, &both, &on_hand, Some(date(2024, 1, 2))), Ok(()));
    // An extra count may cover one lot only.
    assert_eq!(
        check_inventory(
            l.location,
            InventoryKind::Count,
            std::slice::from_ref(&other_lot),
            &on_hand,
            Some(date(2024, 1, 2))
        ),
        Ok(())
    );
    let twice = [l.count_line(2, vec![]), l.count_line(2, vec![])];
    assert_eq!(
        check_inventory(l.location, InventoryKind::Count, &twice, &on_hand, None).map_err(|r| r.field),
        Err("lines")
    );
    // The initial inventory once, and before any biennial one; a zero inventory when nothing is on hand.
    let r = check_inventory(l.location, InventoryKind::Initial, &[], &BTreeMap::new(), Some(date(2024, 1, 2)));
    assert_eq!(r.map_err(|r| r.field), Err("kind"));
    let r = check_inventory(l.location, InventoryKind::Biennial, &both, &on_hand, None);
    assert_eq!(r.map_err(|r| r.field), Err("kind"));
    assert_eq!(check_inventory(l.location, InventoryKind::Initial, &[], &BTreeMap::new(), None), Ok(()));
}

#[test]
fn a_theft_starts_the_timers_and_the_discrepancy_closes_only_when_both_reports_are_recorded() {
    let holidays = BTreeSet::new();
    let today = date(2025, 6, 2);
    let opened = DiscrepancyRecord {
        at: on(2, 9),
        by: nurse(),
        event: DiscrepancyEvent::Opened {
            origin: Origin::Incident { description: "cabinet found forced open".into() },
            found_on: today,
        },
    };
    assert_eq!(check_opening(&opened, today), Ok(()));
    let mut log = vec![opened];
    let ctx = DiscrepancyContext { today, holidays: &holidays, explained: Micrograms::ZERO };
    let attempt = |log: &mut Vec<DiscrepancyRecord>, by: Person, event: DiscrepancyEvent| {
        let r = DiscrepancyRecord { at: on(2, 12), by, event };
        let d = Discrepancy::replay(log).unwrap();
        d.decide(&r, &ctx).map(|()| log.push(r)).map_err(|e| e.field)
    };
    // Notice before the judgement, a nurse judging: refused.
    let notice = DiscrepancyEvent::NoticeSent { on: today, to: "DEA Field Division".into() };
    assert_eq!(attempt(&mut log, prescriber(), notice.clone()), Err("kind"));
    let judged = DiscrepancyEvent::JudgedTheftOrLoss {
        what: LossKind::Theft,
        discovered_on: today,
        reason: "forced entry".into(),
        factors: vec![SignificanceFactor::LikelyDiversion],
    };
    assert_eq!(attempt(&mut log, nurse(), judged.clone()), Err("by"));
    let future = DiscrepancyEvent::JudgedTheftOrLoss {
        what: LossKind::Theft,
        discovered_on: date(2025, 6, 3),
        reason: "forced entry".into(),
        factors: vec![],
    };
    assert_eq!(attempt(&mut log, prescriber(), future), Err("discovered_on"));
    assert_eq!(attempt(&mut log, prescriber(), judged), Ok(()));

    let d = Discrepancy::replay(&log).unwrap();
    assert_eq!(
        d.timers(date(2025, 6, 4), &holidays),
        Some((Deadline::Overdue { by: date(2025, 6, 3) }, Deadline::Due { by: date(2025, 7, 17) })),
        "TV-DEA-1 on the dashboard"
    );
    let close = DiscrepancyEvent::Closed { summary: "reported".into() };
    assert_eq!(attempt(&mut log, prescriber(), close.clone()), Err("notice"));
    assert_eq!(attempt(&mut log, admin(), notice), Ok(()));
    assert_eq!(attempt(&mut log, prescriber(), close.clone()), Err("form_106"));
    let form = DiscrepancyEvent::Form106Submitted { on: today, reference: "F106-0001".into() };
    assert_eq!(attempt(&mut log, admin(), form), Ok(()));
    let not_significant = DiscrepancyEvent::JudgedNotSignificant { reason: "changed my mind".into(), factors: vec![] };
    assert_eq!(attempt(&mut log, prescriber(), not_significant), Err("kind"), "a loss report stands");
    assert_eq!(attempt(&mut log, prescriber(), close), Ok(()));
    let d = Discrepancy::replay(&log).unwrap();
    assert!(!d.is_open());
    assert_eq!(
        d.timers(date(2025, 6, 4), &holidays),
        Some((Deadline::Done { on: today, late: false }, Deadline::Done { on: today, late: false }))
    );
    assert_eq!(attempt(&mut log, nurse(), DiscrepancyEvent::NoteAdded { text: "more".into() }), Err("kind"));
}

// ---------------------------------------------------------------------------------------------
// Balances, reports and the hash chain.

#[test]
fn balances_are_per_location_product_and_lot() {
    let mut l = Ledger::new();
    l.ok(l.receipt(2, on(1, 9)));
    let mut other_lot = l.receipt(1, on(1, 9));
    other_lot.lot = LotNumber::parse("lot", "ZZ9").unwrap();
    let mut other_place = l.receipt(3, on(1, 9));
    other_place.location = LocationId::from_uuid(Uuid::from_u128(201));
    let all = [l.entries.clone(), vec![other_lot, other_place]].concat();
    let b = balances(&all);
    assert_eq!(b.len(), 3);
    let mut values: Vec<i64> = b.values().map(|m| m.ug()).collect();
    values.sort_unstable();
    assert_eq!(values, vec![500_000, 1_000_000, 1_500_000]);
    // An entry of another lot is refused by this lot's bucket.
    let mut wrong = l.receipt(1, on(1, 9));
    wrong.lot = LotNumber::parse("lot", "ZZ9").unwrap();
    assert_eq!(l.refused(wrong).field, "lot");
}

#[test]
fn the_running_balance_and_the_transaction_report_read_the_entries() {
    let mut l = Ledger::new();
    l.ok(l.receipt(1, on(1, 9)));
    l.session(50, 40, on(2, 10));
    let lines = super::balance::running_balance(&l.entries);
    let running: Vec<(EntryKind, i64)> = lines.iter().map(|x| (x.kind, x.balance.ug())).collect();
    assert_eq!(
        running,
        vec![
            (EntryKind::Receipt, 500_000),
            (EntryKind::Draw, 450_000),
            (EntryKind::Administration, 450_000),
            (EntryKind::Waste, 450_000)
        ]
    );
    let admin_line = transaction_line(&l.entries[2], &l.product);
    assert_eq!(admin_line.patient_name.as_deref(), Some("Sam Synthetic"));
    assert_eq!(admin_line.patient_address.as_deref(), Some("22 Example Road, Springfield"));
    assert_eq!((admin_line.kind, admin_line.amount_mg.as_str()), ("administration", "40"));
    let waste_line = transaction_line(&l.entries[3], &l.product);
    assert_eq!(waste_line.witnesses, vec!["Nurse Diaz".to_owned()]);
    let receipt_line = transaction_line(&l.entries[0], &l.product);
    assert_eq!(
        receipt_line.counterparty.as_deref(),
        Some("Synthetic Pharma Supply, 1 Warehouse Way, Springfield (DEA RS1234563)")
    );
}

#[test]
fn entries_round_trip_as_json() {
    let mut l = Ledger::new();
    l.ok(l.receipt(2, on(1, 9)));
    l.session(50, 40, on(2, 10));
    let at = on(3, 9);
    let destroyed = l.ok(l.destruction(vec![witness(&nurse(), at), witness(&second_nurse(), at)], at));
    // A count (whose inventory kind must not clash with the entry's own `kind` tag).
    l.ok(l.count(InventoryKind::Count, on(4, 18), 1, Vec::new()));
    assert!(l.entries.iter().any(|e| e.kind() == EntryKind::InventoryCount));
    for e in &l.entries {
        let json = serde_json::to_string(e).unwrap();
        assert_eq!(&serde_json::from_str::<LedgerEntry>(&json).unwrap(), e);
    }
    assert!(serde_json::to_string(&l.entries[0]).unwrap().contains(r#""kind":"receipt""#));
    let json = serde_json::to_string(l.entries.iter().find(|e| e.id == destroyed).unwrap()).unwrap();
    assert!(json.contains(r#""reason":"expired""#), "{json}");
}

/// What a store does on append: the change the bucket decided, chained after the head.
fn chained(entries: &[LedgerEntry]) -> Vec<StoredLedgerEntry> {
    let mut out: Vec<StoredLedgerEntry> = Vec::new();
    let mut bucket = Bucket::default();
    for e in entries {
        let before = bucket.balance();
        bucket.apply(e);
        let prev = out.last().map(|p| (p.seq, Hash::from_hex(&p.hash).unwrap()));
        out.push(StoredLedgerEntry::chain(e, bucket.balance().saturating_sub(before), prev).unwrap());
    }
    out
}

fn head(c: &[StoredLedgerEntry]) -> Option<(i64, Hash)> {
    c.last().map(|e| (e.seq, Hash::from_hex(&e.hash).unwrap()))
}

fn chain_fixture() -> (String, Vec<StoredLedgerEntry>) {
    let mut l = Ledger::new();
    l.ok(l.receipt(2, on(1, 9)));
    l.session(50, 40, on(2, 10));
    l.session(50, 50, on(3, 10));
    (l.location.to_string(), chained(&l.entries))
}

#[test]
fn an_untouched_chain_verifies() {
    let (loc, c) = chain_fixture();
    assert_eq!(verify(&loc, &c, head(&c)), Ok(6));
    assert_eq!(verify(&loc, &[], None), Ok(0));
}

#[test]
fn an_edited_entry_is_the_first_broken_link() {
    let (loc, mut c) = chain_fixture();
    let h = head(&c);
    c[2].body = c[2].body.replace("\"amount\":40000", "\"amount\":30000");
    assert_eq!(verify(&loc, &c, h), Err(LedgerChainBreak::Altered { seq: 3 }));
}

#[test]
fn a_rehashed_edit_breaks_the_next_link() {
    let (loc, c) = chain_fixture();
    let h = head(&c);
    let rehash = |e: &mut StoredLedgerEntry| {
        let prev = Hash::from_hex(&e.prev_hash).unwrap();
        e.hash = e.compute_hash(prev).to_hex();
    };
    // The waste's method rewritten and its hash recomputed: the next entry no longer follows it.
    let mut method = c.clone();
    assert!(method[3].body.contains("drug-waste container"));
    method[3].body = method[3].body.replace("drug-waste container", "sink");
    rehash(&mut method[3]);
    assert_eq!(verify(&loc, &method, h), Err(LedgerChainBreak::Broken { seq: 5 }));
    // A draw's amount rewritten and rehashed no longer gives the change stored with it.
    let mut amount = c.clone();
    amount[1].body = amount[1].body.replace("\"amount\":50000", "\"amount\":10000");
    rehash(&mut amount[1]);
    assert_eq!(
        verify(&loc, &amount, h),
        Err(LedgerChainBreak::ChangeMismatch { seq: 2, stored: -50_000, derived: -10_000 })
    );
}

#[test]
fn deleted_and_truncated_entries_are_found() {
    let (loc, c) = chain_fixture();
    let h = head(&c);
    let mut gap = c.clone();
    gap.remove(2);
    assert_eq!(verify(&loc, &gap, h), Err(LedgerChainBreak::Missing { expected: 3, found: 4 }));
    let mut short = c.clone();
    short.truncate(4);
    assert_eq!(verify(&loc, &short, h), Err(LedgerChainBreak::Truncated { last: 4, head: 6 }));
    assert_eq!(verify("another-location", &c, h), Err(LedgerChainBreak::WrongLocation { found: 1 }));
}

#[test]
fn an_edited_index_column_is_found_even_when_rehashed_with_the_head() {
    let (loc, mut c) = chain_fixture();
    let last = c.len() - 1;
    c[last].lot = "ZZ9".into();
    let prev = Hash::from_hex(&c[last].prev_hash).unwrap();
    c[last].hash = c[last].compute_hash(prev).to_hex();
    let h = head(&c);
    assert_eq!(verify(&loc, &c, h), Err(LedgerChainBreak::ColumnMismatch { seq: 6, column: "lot" }));
}

#[test]
fn a_stored_balance_change_that_the_entries_do_not_derive_is_found() {
    let (loc, mut c) = chain_fixture();
    // Someone with database access rewrites a draw's change and rehashes the rest of the chain.
    c[1].change_ug = 0;
    let mut prev = Hash::from_hex(&c[0].hash).unwrap();
    for e in c.iter_mut().skip(1) {
        e.prev_hash = prev.to_hex();
        e.hash = e.compute_hash(prev).to_hex();
        prev = Hash::from_hex(&e.hash).unwrap();
    }
    let h = head(&c);
    assert_eq!(verify(&loc, &c, h), Err(LedgerChainBreak::ChangeMismatch { seq: 2, stored: 0, derived: -50_000 }));
}

#[test]
fn the_index_columns_of_an_administration_name_its_session_and_patient() {
    let (_, c) = chain_fixture();
    let administration = c.iter().find(|e| e.kind == "administration").unwrap();
    assert_eq!(administration.patient_id.as_deref(), Some(Uuid::from_u128(900).to_string().as_str()));
    assert!(administration.session_id.is_some());
    let receipt = &c[0];
    assert_eq!(
        (receipt.session_id.as_deref(), receipt.patient_id.as_deref(), receipt.change_ug),
        (None, None, 1_000_000)
    );
}
