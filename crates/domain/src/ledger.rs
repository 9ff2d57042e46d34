//! The Schedule III controlled-substance ledger (KAP-SPEC 9): every milligram of ketamine and
//! esketamine received, drawn, given, wasted, destroyed, transferred and counted, per registered
//! location and per product and lot.
//!
//! The model, and why:
//! - **Append-only entries** ([`LedgerEntry`]): receipt, draw, administration, waste, destruction,
//!   transfer out, adjustment, inventory count, reversal. Nothing is edited; a mistake is undone by
//!   a [`Reversal`] with its reason (KAP-SPEC 9.4).
//! - **Balances are derived**, never stored as truth: [`balance::Bucket`] folds one lot's entries
//!   (location × product × lot) into its balance, the draws still open and what the latest count
//!   found, and decides whether a new entry may be appended ([`balance::Bucket::check`]). An entry
//!   that would take stock below zero is refused naming the field at fault.
//! - **Draws**: stock leaves the cabinet when it is drawn for a dosing session; the administration
//!   and the waste of the remainder then account for the draw ([`dispensing`]). So the balance is
//!   what should be in the cabinet, and the spec's reconciliation (last inventory + receipts −
//!   administered − wasted − destroyed − transferred) is the same figure once every draw is settled
//!   ([`balance::Reconciliation`]).
//! - **Counts** set the balance to what was counted, keeping what the ledger expected; a difference
//!   opens a [`discrepancy::Discrepancy`] (TV-DEA-5) whose investigation may end in a theft or
//!   significant-loss report with its deadlines (TV-DEA-1, TV-DEA-2).
//! - **Quantities** are integers: micrograms and microlitres ([`quantity`] says why).
//! - **Hash chain** per location, like the audit log ([`chain`]).
//! - **Who may do what**: [`access`].

pub mod access;
pub mod balance;
pub mod chain;
pub mod discrepancy;
pub mod dispensing;
pub mod entry;
pub mod inventory;
pub mod quantity;
pub mod registry;
pub mod reports;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::FieldError;

pub use access::{LedgerAction, ledger_allows};
pub use balance::{Bucket, CheckContext, OpenDraw, Reconciliation, StockKey, balances, running_balance};
pub use entry::{
    Adjustment, AdministrationEntry, Destruction, DestructionReason, Direction, Draw, EntryDetail, EntryKind,
    InventoryCount, InventoryKind, LedgerEntry, OpenedContainer, PatientOnRecord, Person, Receipt, Reversal, TakenAt,
    TransferOut, TransferPurpose, Waste, Witness,
};
pub use quantity::{Measure, Micrograms, Microlitres, ProductForm};
pub use registry::{CsProduct, DeaNumber, LocationRegistration, Lot, LotNumber, Ndc, Registrant, Substance};

/// Why the ledger refused something: a stable `code` (`invalid`, `role`, `insufficient_stock`,
/// `exceeds_draw`, `expired_lot`, `witness`, `form_41`, `stale`, `reversal`, ...), the input
/// `field` at fault — always named, so a page shows the message next to it — and a message for
/// staff. A refusal changes nothing: the ledger is pure, and the store appends only accepted
/// entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, schemars::JsonSchema)]
#[error("{code}: {field}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub field: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self { code, field, message: message.into() }
    }

    /// The refusal as the web layer's field error (422 naming the field).
    pub fn field_error(&self) -> FieldError {
        FieldError::new(self.field, self.message.clone())
    }
}

impl From<FieldError> for Refusal {
    fn from(e: FieldError) -> Self {
        Self { code: "invalid", field: e.field, message: e.message }
    }
}

/// How long ledger records are kept: **at least 2 years** from their date (21 CFR 1304.04(a)
/// [S52][S59], KAP-SPEC 9.3). A state may require longer (CONFIG per state); the federal floor
/// cannot be lowered, and nothing may be purged earlier (TV-DEA-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "u16", into = "u16")]
pub struct RetentionPolicy {
    years: u16,
}

impl RetentionPolicy {
    /// The federal floor: 2 years (21 CFR 1304.04(a), KAP-SPEC 9.3).
    pub const FEDERAL_MINIMUM_YEARS: u16 = 2;

    pub fn new(years: u16) -> Result<Self, FieldError> {
        if years < Self::FEDERAL_MINIMUM_YEARS {
            return Err(FieldError::new(
                "retention_years",
                format!(
                    "controlled-substance records are kept at least {} years (21 CFR 1304.04(a))",
                    Self::FEDERAL_MINIMUM_YEARS
                ),
            ));
        }
        if years > 100 {
            return Err(FieldError::new("retention_years", "at most 100 years"));
        }
        Ok(Self { years })
    }

    pub const fn years(self) -> u16 {
        self.years
    }

    /// The first date a record dated `record_date` may be purged.
    pub fn keep_until(self, record_date: Date) -> Date {
        record_date.checked_add(i64::from(self.years).years()).unwrap_or(Date::MAX)
    }

    /// May a record dated `record_date` be purged on `today`?
    pub fn may_purge(self, record_date: Date, today: Date) -> bool {
        today >= self.keep_until(record_date)
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self { years: Self::FEDERAL_MINIMUM_YEARS }
    }
}

impl TryFrom<u16> for RetentionPolicy {
    type Error = FieldError;
    fn try_from(years: u16) -> Result<Self, FieldError> {
        Self::new(years)
    }
}

impl From<RetentionPolicy> for u16 {
    fn from(r: RetentionPolicy) -> u16 {
        r.years
    }
}

/// The clinic's (or its state's) ledger settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// CONFIG-DEFAULT on (KAP-SPEC 9.2): waste at administration needs a second licensed person
    /// as witness, who is not the person who gave the dose. The federal rule does not require it
    /// (KAP-SPEC 13.15); many states do.
    pub waste_witness_required: bool,
    /// CONFIG per state, federal floor 2 years (KAP-SPEC 9.3).
    pub retention: RetentionPolicy,
    /// Days other than Saturdays and Sundays on which the DEA field office is closed, for the
    /// 1-business-day theft/loss notice (KAP-SPEC 9.2). The spec gives no holiday list (TV-DEA-2
    /// assumes none), so the clinic enters the days it knows of.
    #[serde(default)]
    pub holidays: BTreeSet<Date>,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self { waste_witness_required: true, retention: RetentionPolicy::default(), holidays: BTreeSet::new() }
    }
}

/// Free text up to `max` characters: trimmed, not empty, no control characters but new lines
/// and tabs.
pub(crate) fn text(field: &'static str, raw: &str, max: usize) -> Result<String, FieldError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "write something here"));
    }
    if t.chars().count() > max {
        return Err(FieldError::new(field, format!("use at most {max} characters")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(FieldError::new(field, "use plain text (no control characters)"));
    }
    Ok(t.to_owned())
}
