//! The ledger's records as an inspector reads them: DEA Form 41 for a destruction, and one flat
//! line per transaction for "all Schedule III transactions for a date range" (KAP-SPEC 9.4),
//! on screen, in CSV and printed. Patient names and addresses appear here — the records require
//! them — and nowhere in logs.

use serde::Serialize;

use super::entry::{DestructionReason, EntryDetail, LedgerEntry};
use super::quantity::Micrograms;
use super::registry::{CsProduct, DeaNumber, LocationRegistration, LotNumber, Ndc};
use crate::UtcTs;
use crate::ids::LedgerEntryId;

/// The content of DEA Form 41 for one destroyed item [S56] (KAP-SPEC 9.2; TV-DEA-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Form41 {
    pub registrant: String,
    pub dea_number: DeaNumber,
    pub registrant_address: String,
    pub phone: String,
    pub contact: String,
    pub ndc: Ndc,
    pub batch: LotNumber,
    pub name: String,
    pub strength_and_form: String,
    pub package_quantity: String,
    pub full_packages: u32,
    pub partial: Option<String>,
    pub total_destroyed: Micrograms,
    pub date: UtcTs,
    pub method: String,
    pub reason: String,
    /// Where it was destroyed: the registered location.
    pub location: String,
    /// Printed names of the two witnesses; each authenticated (their signature) at the time.
    pub witnesses: Vec<String>,
}

/// The Form 41 record of a destruction entry (`None` for any other kind: wastage at
/// administration is not a Form 41 event, TV-DEA-6).
pub fn form_41(entry: &LedgerEntry, product: &CsProduct, registration: &LocationRegistration) -> Option<Form41> {
    let EntryDetail::Destruction(d) = &entry.detail else { return None };
    Some(Form41 {
        registrant: registration.registrant.clone(),
        dea_number: registration.dea_number.clone(),
        registrant_address: registration.address.clone(),
        phone: registration.phone.clone(),
        contact: registration.contact.clone(),
        ndc: product.ndc.clone(),
        batch: entry.lot.clone(),
        name: product.name.clone(),
        strength_and_form: product.form.describe(),
        package_quantity: product.form.package_quantity(),
        full_packages: d.full_containers,
        partial: d.partial.map(|p| p.describe()),
        total_destroyed: d.amount,
        date: entry.occurred_at,
        method: d.method.clone(),
        reason: match &d.reason {
            DestructionReason::Expired => "expired".to_owned(),
            DestructionReason::Damaged => "damaged".to_owned(),
            DestructionReason::Other(why) => why.clone(),
        },
        location: registration.address.clone(),
        witnesses: d.witnesses.iter().map(|w| w.name.clone()).collect(),
    })
}

/// One transaction as a row of the transactions report (and its CSV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TransactionLine {
    pub entry: LedgerEntryId,
    pub occurred_at: UtcTs,
    #[schemars(with = "super::EntryKind")]
    pub kind: &'static str,
    pub product: String,
    pub ndc: Ndc,
    pub lot: LotNumber,
    /// As measured: `2 containers`, `0.8 mL`, `1 device`.
    pub quantity: String,
    pub amount_mg: String,
    pub recorded_by: String,
    pub administered_by: Option<String>,
    pub witnesses: Vec<String>,
    pub patient_name: Option<String>,
    pub patient_address: Option<String>,
    /// Supplier or recipient: name, address and DEA number.
    pub counterparty: Option<String>,
    /// Invoice, document, method or reason.
    pub note: Option<String>,
}

pub fn transaction_line(entry: &LedgerEntry, product: &CsProduct) -> TransactionLine {
    let mut line = TransactionLine {
        entry: entry.id,
        occurred_at: entry.occurred_at,
        kind: entry.kind().as_str(),
        product: product.name.clone(),
        ndc: product.ndc.clone(),
        lot: entry.lot.clone(),
        quantity: String::new(),
        amount_mg: String::new(),
        recorded_by: entry.recorded_by.name.clone(),
        administered_by: None,
        witnesses: Vec::new(),
        patient_name: None,
        patient_address: None,
        counterparty: None,
        note: None,
    };
    let party = |p: &super::registry::Registrant| format!("{}, {} (DEA {})", p.name, p.address, p.dea_number);
    let (quantity, amount) = match &entry.detail {
        EntryDetail::Receipt(r) => {
            line.counterparty = Some(party(&r.supplier));
            line.note = r.invoice.clone();
            (super::quantity::Measure::Containers(r.containers).describe(), r.amount)
        }
        EntryDetail::Draw(d) => (d.measure.describe(), d.amount),
        EntryDetail::Administration(a) => {
            line.administered_by = Some(a.administered_by.name.clone());
            line.patient_name = Some(a.patient.name.clone());
            line.patient_address = Some(a.patient.address.clone());
            (a.amount.to_string(), a.amount)
        }
        EntryDetail::Waste(w) => {
            line.witnesses = w.witness.iter().map(|x| x.name.clone()).collect();
            line.note = Some(w.method.clone());
            (w.measure.describe(), w.amount)
        }
        EntryDetail::Destruction(d) => {
            line.witnesses = d.witnesses.iter().map(|x| x.name.clone()).collect();
            line.note = Some(d.method.clone());
            let mut q = super::quantity::Measure::Containers(d.full_containers).describe();
            if let Some(p) = d.partial {
                q = format!("{q} + {}", p.describe());
            }
            (q, d.amount)
        }
        EntryDetail::TransferOut(t) => {
            line.counterparty = Some(party(&t.recipient));
            line.note = Some(t.document.clone());
            (t.measure.describe(), t.amount)
        }
        EntryDetail::Adjustment(a) => {
            line.note = Some(a.reason.clone());
            (a.amount.to_string(), a.amount)
        }
        EntryDetail::InventoryCount(c) => {
            line.note = Some(format!("{} inventory; the ledger expected {}", c.kind.as_str(), c.expected));
            (c.counted.to_string(), c.counted)
        }
        EntryDetail::Reversal(r) => {
            line.note = Some(format!("reverses {}: {}", r.reverses, r.reason));
            (String::new(), Micrograms::ZERO)
        }
    };
    line.quantity = quantity;
    line.amount_mg = amount.mg_text();
    line
}
