//! The entries of the ledger: what each kind records, and the checks of its own content.
//!
//! An entry is never changed: a mistake is corrected by a [`Reversal`] naming the entry and the
//! reason (KAP-SPEC 9.4). Whether an entry may be appended given the rest of the ledger (enough
//! stock, an open draw, a count that is not stale) is [`super::balance::Bucket::check`]'s job.

use serde::{Deserialize, Serialize};

use super::access::{LedgerAction, ledger_allows};
use super::quantity::{Measure, Micrograms, ProductForm};
use super::registry::{CsProduct, LotNumber, RECIPIENT_FIELDS, Registrant, SUPPLIER_FIELDS};
use super::{LedgerSettings, Refusal, text};
use crate::ids::{CsProductId, DosingSessionId, InventoryId, LedgerEntryId, LocationId};
use crate::{FieldError, PatientId, Role, UserId, UtcTs};

/// A person named in a record — who recorded, administered or witnessed — with the printed name
/// the record needs (21 CFR 1304.22(c) via KAP-SPEC 9.2: "name or initials of the individual who
/// dispensed or administered"; Form 41: printed names of the witnesses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub user: UserId,
    pub role: Role,
    pub name: String,
}

impl Person {
    fn check(&self, field: &'static str) -> Result<(), FieldError> {
        text(field, &self.name, 200).map(drop)
    }
}

/// A witness who authenticated on the spot (password, and TOTP if enrolled). The domain cannot
/// check a password: the web layer builds a `Witness` only after it has, and `authenticated_at` is
/// that moment. Their authentication is the signature Form 41 asks for [S56].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    pub user: UserId,
    pub role: Role,
    pub name: String,
    pub authenticated_at: UtcTs,
}

impl Witness {
    pub fn person(&self) -> Person {
        Person { user: self.user, role: self.role, name: self.name.clone() }
    }
}

/// The patient an administration was for: the record needs the patient's name and address
/// (21 CFR 1304.22(c) via KAP-SPEC 9.2). Kept as they were on the day, so a later change of
/// address leaves the record true. Shown in reports only; never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientOnRecord {
    pub patient: PatientId,
    pub name: String,
    pub address: String,
}

impl PatientOnRecord {
    /// Refuses a patient without a name or an address on their chart: the dispensing record
    /// cannot be complete without them (KAP-SPEC 9.2).
    pub fn new(patient: PatientId, name: &str, address: Option<&str>) -> Result<Self, FieldError> {
        let name = text("patient.name", name, 200)?;
        let address = match address.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) => text("patient.address", a, 500)?,
            None => {
                return Err(FieldError::new(
                    "patient.address",
                    "the dispensing record needs the patient's address (KAP-SPEC 9.2): add it to the chart",
                ));
            }
        };
        Ok(Self { patient, name, address })
    }

    fn check(&self) -> Result<(), FieldError> {
        text("patient.name", &self.name, 200)?;
        text("patient.address", &self.address, 500)?;
        Ok(())
    }
}

/// Containers received from a supplier, from the invoice or packing slip (KAP-SPEC 9.2 receipt:
/// for Schedule III the invoice is the usual receipt record, no DEA-222). The entry's
/// `occurred_at` is the date actually received (21 CFR 1304.21(d)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub supplier: Registrant,
    pub containers: u32,
    /// `containers` full containers of the product.
    pub amount: Micrograms,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<String>,
}

/// Stock taken out of the locked cabinet for one dosing session. What was drawn is then accounted
/// for by the [`AdministrationEntry`] and, for any remainder, a [`Waste`] entry; until then it
/// is "in use".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Draw {
    pub session: DosingSessionId,
    pub measure: Measure,
    pub amount: Micrograms,
}

/// The amount given to the patient from a draw: units or volume administered, the patient's name
/// and address, the date, and the individual who administered it (KAP-SPEC 9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministrationEntry {
    pub draw: LedgerEntryId,
    pub session: DosingSessionId,
    pub patient: PatientOnRecord,
    pub administered_by: Person,
    pub amount: Micrograms,
    /// SNOMED CT route (KAP-SPEC 8.3), as in the session's administration record.
    pub route_snomed: String,
}

/// What was left of a draw and disposed of at the administration: recorded in the dispensing
/// record, **not** on DEA Form 41 (KAP-SPEC 9.2, TV-DEA-6), with the quantity, method, time and
/// both identities. The witness is a CONFIG-DEFAULT (on): federally not required for this wastage
/// (KAP-SPEC 9.2, 13.15), commonly required by states and institutions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waste {
    pub draw: LedgerEntryId,
    pub measure: Measure,
    pub amount: Micrograms,
    pub method: String,
    #[serde(default)]
    pub witness: Option<Witness>,
}

/// Why stock is destroyed on site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
/// In JSON: `"expired"`, `"damaged"` or `{"other": "why"}`.
#[serde(rename_all = "snake_case")]
pub enum DestructionReason {
    Expired,
    Damaged,
    Other(String),
}

/// On-site destruction to a non-retrievable state, recorded on DEA Form 41 [S56][S57]
/// (KAP-SPEC 9.2): per item the NDC, batch (the entry's lot), name, strength, form, package
/// quantity, number of full packages, partial count and total destroyed; date, method and
/// location; the printed names and signatures of **two** authorised employee witnesses who
/// personally witnessed it (TV-DEA-7: a record missing the second witness is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Destruction {
    pub reason: DestructionReason,
    pub full_containers: u32,
    /// What is left in an opened container, if one is destroyed too.
    #[serde(default)]
    pub partial: Option<Measure>,
    /// The total destroyed: full containers plus the partial.
    pub amount: Micrograms,
    pub method: String,
    pub witnesses: Vec<Witness>,
}

/// Who receives stock leaving the location (KAP-SPEC 9.2 other disposal; 21 CFR 1317.10 returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferPurpose {
    /// A return or recall to the supplier (21 CFR 1317.10 [S57]).
    ReturnToSupplier,
    /// A DEA-registered reverse distributor, who destroys it; Schedule III documented by invoice.
    ReverseDistributor,
    /// Another registrant.
    OtherRegistrant,
}

/// Stock leaving the location for another registrant, with the document that records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOut {
    pub purpose: TransferPurpose,
    pub recipient: Registrant,
    pub measure: Measure,
    pub amount: Micrograms,
    /// The invoice or other document number.
    pub document: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Increase,
    Decrease,
}

/// A correction of the balance that no other kind describes, always with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    pub direction: Direction,
    pub amount: Micrograms,
    pub reason: String,
}

/// Which inventory a count belongs to (KAP-SPEC 9.2, [S54]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InventoryKind {
    /// On the date the location first dispenses or administers; a zero inventory if nothing is on
    /// hand.
    Initial,
    /// At least every 2 years after the previous inventory.
    Biennial,
    /// Any other count (monthly reconciliation, after a discrepancy). It checks the ledger but does
    /// not stand in for the biennial inventory.
    Count,
}

impl InventoryKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            InventoryKind::Initial => "initial",
            InventoryKind::Biennial => "biennial",
            InventoryKind::Count => "count",
        }
    }

    /// A complete inventory of everything on hand, which resets the biennial clock.
    pub const fn is_full_inventory(self) -> bool {
        matches!(self, InventoryKind::Initial | InventoryKind::Biennial)
    }
}

/// An inventory states whether it was taken at the opening or the close of business [S54].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TakenAt {
    OpeningOfBusiness,
    CloseOfBusiness,
}

/// An opened container as counted: its contents measured, or estimated where the rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenedContainer {
    pub measure: Measure,
    pub estimated: bool,
}

/// One lot's line of an inventory, signed by the person taking it (the entry's `recorded_by`).
/// `expected` is the ledger's balance when the count was recorded; from this entry on the
/// balance is what was counted (KAP-SPEC 9.4: expected on hand starts from the last inventory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryCount {
    pub inventory: InventoryId,
    /// `inventory_kind` in JSON: the entry's own tag is `kind`.
    #[serde(rename = "inventory_kind")]
    pub kind: InventoryKind,
    pub taken_at: TakenAt,
    pub full_containers: u32,
    #[serde(default)]
    pub opened: Vec<OpenedContainer>,
    pub counted: Micrograms,
    pub expected: Micrograms,
}

impl InventoryCount {
    /// Counted minus expected: negative when stock is missing (TV-DEA-5: −10 mg).
    pub fn difference(&self) -> Micrograms {
        self.counted.saturating_sub(self.expected)
    }
}

/// The correction of a mistaken entry: the entry stays, and this one undoes its effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    pub reverses: LedgerEntryId,
    pub reason: String,
}

/// What an entry records. In JSON the kind is the `"kind"` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryDetail {
    Receipt(Receipt),
    Draw(Draw),
    Administration(AdministrationEntry),
    Waste(Waste),
    Destruction(Destruction),
    TransferOut(TransferOut),
    Adjustment(Adjustment),
    InventoryCount(InventoryCount),
    Reversal(Reversal),
}

/// The kinds of entry, for stored columns, filters and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Receipt,
    Draw,
    Administration,
    Waste,
    Destruction,
    TransferOut,
    Adjustment,
    InventoryCount,
    Reversal,
}

impl EntryKind {
    pub const ALL: [EntryKind; 9] = [
        EntryKind::Receipt,
        EntryKind::Draw,
        EntryKind::Administration,
        EntryKind::Waste,
        EntryKind::Destruction,
        EntryKind::TransferOut,
        EntryKind::Adjustment,
        EntryKind::InventoryCount,
        EntryKind::Reversal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Receipt => "receipt",
            EntryKind::Draw => "draw",
            EntryKind::Administration => "administration",
            EntryKind::Waste => "waste",
            EntryKind::Destruction => "destruction",
            EntryKind::TransferOut => "transfer_out",
            EntryKind::Adjustment => "adjustment",
            EntryKind::InventoryCount => "inventory_count",
            EntryKind::Reversal => "reversal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Only on-site destruction is a DEA Form 41 event; wastage at administration is recorded in
    /// the dispensing record instead (KAP-SPEC 9.2, TV-DEA-6).
    pub const fn is_form_41(self) -> bool {
        matches!(self, EntryKind::Destruction)
    }

    /// The permission the person recording this kind needs.
    pub const fn action(self) -> LedgerAction {
        match self {
            EntryKind::InventoryCount => LedgerAction::TakeInventory,
            _ => LedgerAction::RecordTransaction,
        }
    }
}

/// One entry of a location's ledger, for one product and lot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub id: LedgerEntryId,
    pub location: LocationId,
    pub product: CsProductId,
    pub lot: LotNumber,
    /// When it actually happened (received, drawn, given, wasted, destroyed, counted): records
    /// carry the actual dates (21 CFR 1304.21(d) via KAP-SPEC 9.3).
    pub occurred_at: UtcTs,
    /// When it was written to the ledger.
    pub recorded_at: UtcTs,
    pub recorded_by: Person,
    /// Set on an entry recorded after a count that already reflects it (a receipt found missing
    /// in an investigation, a correction of an entry from before the count): it changes no
    /// balance, and it explains that much of the count's discrepancy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_in_count: Option<LedgerEntryId>,
    pub detail: EntryDetail,
}

impl LedgerEntry {
    pub fn kind(&self) -> EntryKind {
        match &self.detail {
            EntryDetail::Receipt(_) => EntryKind::Receipt,
            EntryDetail::Draw(_) => EntryKind::Draw,
            EntryDetail::Administration(_) => EntryKind::Administration,
            EntryDetail::Waste(_) => EntryKind::Waste,
            EntryDetail::Destruction(_) => EntryKind::Destruction,
            EntryDetail::TransferOut(_) => EntryKind::TransferOut,
            EntryDetail::Adjustment(_) => EntryKind::Adjustment,
            EntryDetail::InventoryCount(_) => EntryKind::InventoryCount,
            EntryDetail::Reversal(_) => EntryKind::Reversal,
        }
    }

    /// The dosing session a draw or an administration is for (an index column of the store).
    pub fn session(&self) -> Option<DosingSessionId> {
        match &self.detail {
            EntryDetail::Draw(d) => Some(d.session),
            EntryDetail::Administration(a) => Some(a.session),
            _ => None,
        }
    }

    /// The patient an administration was for (an index column, for the dispensing log by patient).
    pub fn patient(&self) -> Option<PatientId> {
        match &self.detail {
            EntryDetail::Administration(a) => Some(a.patient.patient),
            _ => None,
        }
    }

    /// The checks of the entry's own content, whatever the rest of the ledger holds: text fields,
    /// quantities that match their measure and the product's form, who may record it, and the
    /// witnesses. Every refusal names its field.
    pub fn check_content(&self, product: &CsProduct, settings: &LedgerSettings) -> Result<(), Refusal> {
        let kind = self.kind();
        self.recorded_by.check("recorded_by.name")?;
        if !ledger_allows(self.recorded_by.role, kind.action()) {
            return Err(Refusal::new(
                "role",
                "recorded_by",
                format!(
                    "a {} may not record a {} in the controlled-substance ledger",
                    self.recorded_by.role.label(),
                    kind.as_str()
                ),
            ));
        }
        if self.product != product.id {
            return Err(Refusal::new("invalid", "product", "this entry is for another product"));
        }
        let form = &product.form;
        match &self.detail {
            EntryDetail::Receipt(r) => {
                r.supplier.check(SUPPLIER_FIELDS)?;
                if let Some(inv) = &r.invoice {
                    text("invoice", inv, 100)?;
                }
                let expected = Measure::Containers(r.containers).amount("containers", form)?;
                same_amount("containers", r.amount, expected)?;
            }
            EntryDetail::Draw(d) => {
                same_amount("measure", d.amount, d.measure.amount("measure", form)?)?;
            }
            EntryDetail::Administration(a) => {
                a.patient.check()?;
                a.administered_by.check("administered_by.name")?;
                if !ledger_allows(a.administered_by.role, LedgerAction::RecordTransaction) {
                    return Err(Refusal::new(
                        "role",
                        "administered_by",
                        format!("a {} may not administer a controlled substance", a.administered_by.role.label()),
                    ));
                }
                text("route_snomed", &a.route_snomed, 20)?;
                a.amount.positive("amount")?;
                if let ProductForm::DeviceKit { .. } = form {
                    Measure::Amount(a.amount).amount("amount", form)?;
                }
            }
            EntryDetail::Waste(w) => {
                same_amount("measure", w.amount, w.measure.amount("measure", form)?)?;
                text("method", &w.method, 500)?;
                match &w.witness {
                    None if settings.waste_witness_required => {
                        return Err(Refusal::new(
                            "witness",
                            "witness",
                            "waste needs a second licensed person as witness, who signs in here to confirm it",
                        ));
                    }
                    None => {}
                    Some(witness) => check_witness("witness", witness, &self.recorded_by)?,
                }
            }
            EntryDetail::Destruction(d) => {
                text("method", &d.method, 500)?;
                if let DestructionReason::Other(why) = &d.reason {
                    text("reason", why, 500)?;
                }
                let per_container = form.per_container().ok_or_else(|| FieldError::new("product", "unknown size"))?;
                let full = per_container
                    .checked_mul(d.full_containers)
                    .ok_or_else(|| FieldError::new("full_containers", "this quantity is too large"))?;
                let partial = match d.partial {
                    Some(p) => {
                        let a = p.amount("partial", form)?;
                        if a >= per_container {
                            return Err(Refusal::new(
                                "invalid",
                                "partial",
                                "a partial container holds less than a full one: count full ones as full containers",
                            ));
                        }
                        a
                    }
                    None => Micrograms::ZERO,
                };
                let total = full.checked_add(partial).ok_or_else(|| FieldError::new("full_containers", "too large"))?;
                if total.ug() <= 0 {
                    return Err(Refusal::new("invalid", "full_containers", "give the quantity destroyed"));
                }
                same_amount("full_containers", d.amount, total)?;
                check_destruction_witnesses(&d.witnesses)?;
            }
            EntryDetail::TransferOut(t) => {
                t.recipient.check(RECIPIENT_FIELDS)?;
                text("document", &t.document, 100)?;
                same_amount("measure", t.amount, t.measure.amount("measure", form)?)?;
            }
            EntryDetail::Adjustment(a) => {
                a.amount.positive("amount")?;
                text("reason", &a.reason, 2000)?;
            }
            EntryDetail::InventoryCount(c) => super::inventory::check_count(c, form)?,
            EntryDetail::Reversal(r) => {
                text("reason", &r.reason, 2000)?;
                if r.reverses == self.id {
                    return Err(Refusal::new("reversal", "reverses", "an entry cannot reverse itself"));
                }
            }
        }
        Ok(())
    }
}

fn same_amount(field: &'static str, stated: Micrograms, computed: Micrograms) -> Result<(), Refusal> {
    if stated == computed {
        Ok(())
    } else {
        Err(Refusal::new(
            "invalid",
            field,
            format!("the amount {stated} does not match the quantity given, which is {computed}"),
        ))
    }
}

/// A witness must be allowed to witness and be someone other than the person recording.
fn check_witness(field: &'static str, witness: &Witness, recorder: &Person) -> Result<(), Refusal> {
    text(field, &witness.name, 200)?;
    if !ledger_allows(witness.role, LedgerAction::Witness) {
        return Err(Refusal::new(
            "witness",
            field,
            format!("a {} may not witness controlled-substance waste or destruction", witness.role.label()),
        ));
    }
    if witness.user == recorder.user {
        return Err(Refusal::new("witness", field, "the witness must be a second person, not the one recording"));
    }
    Ok(())
}

/// Form 41: two authorised employee witnesses who personally witnessed the destruction [S56]
/// (KAP-SPEC 9.2). Both must be different people; the person recording may be one of them, since
/// the form asks for two witnesses, not for a third person.
fn check_destruction_witnesses(witnesses: &[Witness]) -> Result<(), Refusal> {
    match witnesses {
        [] | [_] => Err(Refusal::new(
            "form_41",
            "witnesses",
            "DEA Form 41 needs two witnesses who saw the destruction and both sign in to confirm it",
        )),
        [a, b] => {
            for (field, w) in [("witnesses[0]", a), ("witnesses[1]", b)] {
                text(field, &w.name, 200)?;
                if !ledger_allows(w.role, LedgerAction::Witness) {
                    return Err(Refusal::new(
                        "witness",
                        field,
                        format!("a {} may not witness a destruction", w.role.label()),
                    ));
                }
            }
            if a.user == b.user {
                return Err(Refusal::new("form_41", "witnesses[1]", "the two witnesses must be two different people"));
            }
            Ok(())
        }
        _ => Err(Refusal::new("form_41", "witnesses", "DEA Form 41 records two witnesses")),
    }
}

/// What every entry of one transaction shares: where, what, when and who. [`EntryHeader::entry`]
/// gives each detail its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    pub location: LocationId,
    pub product: CsProductId,
    pub lot: LotNumber,
    pub occurred_at: UtcTs,
    pub recorded_at: UtcTs,
    pub recorded_by: Person,
}

impl EntryHeader {
    pub fn entry(&self, detail: EntryDetail) -> LedgerEntry {
        LedgerEntry {
            id: LedgerEntryId::new(),
            location: self.location,
            product: self.product,
            lot: self.lot.clone(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            recorded_by: self.recorded_by.clone(),
            included_in_count: None,
            detail,
        }
    }
}
