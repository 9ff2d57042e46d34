//! Who may do what with the controlled-substance ledger.
//!
//! Defaults from issue 6 ("only roles given the controlled-substance permission — default:
//! prescriber, nurse, admin for reports — can see or write the ledger"). The witness rules come
//! from KAP-SPEC 9.2: waste is witnessed by "a second licensed witness" (CONFIG-DEFAULT) and
//! Form 41 by "two authorized employee witnesses"; prescribers and nurses are the licensed roles
//! of this model. The significance of a discrepancy is "decided by registrant" (TV-DEA-5), and the
//! registrant of a KAP clinic's location is a prescriber.
//!
//! The web layer maps each of these to a permission [`crate::Action`] for its routes (see the
//! ledger section of `docs/architecture.md`); this table decides the finer questions a route
//! cannot (may this witness witness, may this person administer).

use crate::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerAction {
    /// See balances, entries and reports (every read is audited).
    ReadLedger,
    /// Record receipts, draws, administrations, waste, destructions, transfers, adjustments and
    /// reversals; administer from a draw.
    RecordTransaction,
    /// Witness waste or a destruction (authenticating on the spot).
    Witness,
    /// Take and sign an inventory count.
    TakeInventory,
    /// Keep the location's registration, products and lots.
    ManageRegistry,
    /// Add to a discrepancy's investigation.
    Investigate,
    /// Decide whether a discrepancy is a theft or significant loss, and close it.
    DecideDiscrepancy,
    /// Record the field-office notice and the DEA Form 106 submission.
    RecordLossReport,
}

impl LedgerAction {
    pub const ALL: [LedgerAction; 8] = [
        LedgerAction::ReadLedger,
        LedgerAction::RecordTransaction,
        LedgerAction::Witness,
        LedgerAction::TakeInventory,
        LedgerAction::ManageRegistry,
        LedgerAction::Investigate,
        LedgerAction::DecideDiscrepancy,
        LedgerAction::RecordLossReport,
    ];
}

/// May someone with `role` do `action`? Deny by default.
pub fn ledger_allows(role: Role, action: LedgerAction) -> bool {
    use LedgerAction as A;
    use Role as R;
    match action {
        A::ReadLedger => matches!(role, R::Prescriber | R::Nurse | R::Admin),
        A::RecordTransaction | A::Witness | A::TakeInventory | A::Investigate => {
            matches!(role, R::Prescriber | R::Nurse)
        }
        A::ManageRegistry | A::RecordLossReport => matches!(role, R::Prescriber | R::Admin),
        A::DecideDiscrepancy => matches!(role, R::Prescriber),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_therapists_and_front_desk_never_touch_the_ledger() {
        for role in [Role::Patient, Role::Therapist, Role::Frontdesk] {
            for action in LedgerAction::ALL {
                assert!(!ledger_allows(role, action), "{role:?} {action:?}");
            }
        }
    }

    #[test]
    fn admins_read_and_report_but_never_handle_stock() {
        assert!(ledger_allows(Role::Admin, LedgerAction::ReadLedger));
        for action in [LedgerAction::RecordTransaction, LedgerAction::Witness, LedgerAction::TakeInventory] {
            assert!(!ledger_allows(Role::Admin, action), "{action:?}");
        }
    }

    #[test]
    fn only_the_prescriber_decides_significance() {
        let deciders: Vec<Role> =
            Role::ALL.into_iter().filter(|r| ledger_allows(*r, LedgerAction::DecideDiscrepancy)).collect();
        assert_eq!(deciders, vec![Role::Prescriber]);
    }
}
