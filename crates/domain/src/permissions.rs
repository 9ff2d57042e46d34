//! The permission table: the one place where roles are decided.
//!
//! Every route of the server names one [`Action`]; the server asks [`allows`] before the handler
//! runs. Object-level scoping (a patient sees only their own record) is a second check in the
//! use case, on top of this table.

use crate::Role;

/// Everything a route can do. `Public` routes need no sign-in (sign-in page, health check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Reachable without signing in.
    Public,
    /// The second step of signing in (TOTP or recovery code); the only thing a session that
    /// still owes its second factor can reach.
    CompleteSignIn,
    /// Ending one's own session; also open to a session that still owes its second factor, so a
    /// half-finished sign-in on a shared workstation can be abandoned.
    SignOut,
    /// Any signed-in account: own profile, own MFA, own sessions, sign-out.
    OwnAccount,
    /// Staff home page ("what is due next").
    StaffHome,
    /// List and search patients.
    ListPatients,
    /// Open one patient's chart (audited as a read of patient data).
    ReadPatient,
    /// Create and manage accounts and roles.
    ManageUsers,
    /// Change clinic settings (MFA requirement per role, ...).
    ManageSettings,
    /// Read, filter and export the audit log.
    ReadAudit,
    /// The patient portal: only ever the patient's own record.
    PortalSelf,
    /// Register a new patient (front desk and clinicians).
    RegisterPatient,
    /// Record a paper consent or a revocation (front desk and clinicians).
    RecordConsent,
    /// Enter a questionnaire for a patient (clinicians).
    RecordQuestionnaire,
    /// See open safety alerts (clinicians).
    ReadSafetyAlerts,
    /// Acknowledge a safety alert with what was done (prescriber or therapist, spec 7.1 / GATE-01).
    AcknowledgeSafetyAlert,
    /// Read the clinical record beyond demographics: consultation, eligibility findings and
    /// decisions (clinicians).
    ReadClinicalRecord,
    /// Record or update the consultation (clinicians).
    RecordConsultation,
    /// Sign or amend an eligibility decision (prescribers: KAP-SPEC 2.1 stage 3).
    SignEligibilityDecision,
    /// Put a patient's pathway on hold, resume, withdraw, complete or reopen it (clinicians).
    ManagePathway,
    /// Read the clinic's reference content: eligibility rules, code tables (all staff).
    ReadReferenceContent,
    /// See the schedule: appointments, rooms, staff, free slots (all staff).
    ReadSchedule,
    /// Book, reschedule, cancel appointments and mark no-shows (front desk and clinicians).
    BookAppointments,
    /// Configure locations, rooms, appointment types and working hours (admins).
    ManageScheduling,
    /// Write the medication instructions of a dosing session's preparation (prescribers).
    WriteMedicationInstructions,
    /// Start a treatment course from a template (prescribers, KAP-SPEC 4.4).
    StartCourse,
    /// Change the clinic's dosing protocols (prescribers who also hold the medical-director
    /// permission on their account; the use case checks that flag).
    EditProtocols,
    /// Compute a dose, volume and rates within a protocol (prescribers and nurses).
    CalculateDose,
    /// Run a dosing session: check-in, readings, notes, the dose and discharge (clinicians; the
    /// domain decides which role may record which step).
    RunDosingSession,
    /// See the live floor board (clinicians and the front desk: initials, phase, timers).
    ReadFloor,
    /// Keep psychotherapy notes (KAP-SPEC 10, 45 CFR 164.501): write one's own and read only
    /// one's own. Therapists and prescribers, the mental-health professionals who talk with the
    /// patient in session; the author-only rule is [`crate::psychotherapy_note::may_read`].
    KeepPsychotherapyNotes,
    /// See the controlled-substance ledger: balances, entries, reports (every read audited).
    /// Prescribers, nurses, and admins for reports (issue 6).
    ReadControlledSubstances,
    /// Record receipts, destructions, transfers, adjustments, reversals, waste and counts
    /// (prescribers and nurses; the domain's `ledger_allows` decides each kind and witness).
    RecordControlledSubstances,
    /// Keep a location's DEA registration, ledger settings, products and lots.
    ManageControlledSubstanceRegistry,
    /// Investigate and decide discrepancies, and record loss reports (the domain decides which
    /// role may do which step: only a prescriber judges significance).
    ManageDiscrepancies,
    /// Draft, sign and amend integration notes (KAP-SPEC 2.1 stage 7: therapists; the domain's
    /// [`crate::integration_note::may_write`] decides, and only a draft's author edits or signs it).
    WriteIntegrationNotes,
    /// Handle patients' requests for access to and amendment of their record (KAP-SPEC 10,
    /// TV-HIP-1/2): record a request on a patient's behalf, extend, export, answer, rebut
    /// (clinicians, who read the clinical record the export holds).
    ManageRecordRequests,
    /// The clinic outcome dashboard and its CSV export (prescribers and admins, issue 7).
    ReadOutcomeReports,
    /// Record a course review: continue, modify or stop with a reason (prescribers; KAP-SPEC 2.1
    /// stage 8, the domain's `course::review` decides the rest).
    ReviewCourse,
    /// Create and revoke API tokens, register webhook endpoints and re-send deliveries (admins,
    /// issue 8). No API token ever holds it: integrations never manage integrations.
    ManageIntegrations,
    /// Start a FHIR Bulk Data export of the clinic's records, follow it and download its files
    /// (issue 8). Prescribers only: the export holds the whole clinical record, which admins do
    /// not read; only the requester reaches a job's status and files.
    ExportClinicalData,
}

impl Action {
    pub const ALL: [Action; 41] = [
        Action::Public,
        Action::CompleteSignIn,
        Action::SignOut,
        Action::OwnAccount,
        Action::StaffHome,
        Action::ListPatients,
        Action::ReadPatient,
        Action::ManageUsers,
        Action::ManageSettings,
        Action::ReadAudit,
        Action::PortalSelf,
        Action::RegisterPatient,
        Action::RecordConsent,
        Action::RecordQuestionnaire,
        Action::ReadSafetyAlerts,
        Action::AcknowledgeSafetyAlert,
        Action::ReadClinicalRecord,
        Action::RecordConsultation,
        Action::SignEligibilityDecision,
        Action::ManagePathway,
        Action::ReadReferenceContent,
        Action::ReadSchedule,
        Action::BookAppointments,
        Action::ManageScheduling,
        Action::WriteMedicationInstructions,
        Action::StartCourse,
        Action::EditProtocols,
        Action::CalculateDose,
        Action::RunDosingSession,
        Action::ReadFloor,
        Action::KeepPsychotherapyNotes,
        Action::ReadControlledSubstances,
        Action::RecordControlledSubstances,
        Action::ManageControlledSubstanceRegistry,
        Action::ManageDiscrepancies,
        Action::WriteIntegrationNotes,
        Action::ManageRecordRequests,
        Action::ReadOutcomeReports,
        Action::ReviewCourse,
        Action::ManageIntegrations,
        Action::ExportClinicalData,
    ];
}

/// The table, role by action. Deny by default: an action missing from a role's row is refused.
const TABLE: &[(Role, &[Action])] = &[
    (
        Role::Admin,
        &[
            Action::OwnAccount,
            Action::StaffHome,
            Action::ListPatients,
            Action::ReadPatient,
            Action::ManageUsers,
            Action::ManageSettings,
            Action::ReadAudit,
            Action::ReadReferenceContent,
            Action::ReadSchedule,
            Action::ManageScheduling,
            Action::ReadControlledSubstances,
            Action::ManageControlledSubstanceRegistry,
            Action::ManageDiscrepancies,
            Action::ReadOutcomeReports,
            Action::ManageIntegrations,
        ],
    ),
    (
        Role::Prescriber,
        &[
            Action::OwnAccount,
            Action::StaffHome,
            Action::ListPatients,
            Action::ReadPatient,
            Action::RegisterPatient,
            Action::RecordConsent,
            Action::RecordQuestionnaire,
            Action::ReadSafetyAlerts,
            Action::AcknowledgeSafetyAlert,
            Action::ReadClinicalRecord,
            Action::RecordConsultation,
            Action::SignEligibilityDecision,
            Action::ManagePathway,
            Action::ReadReferenceContent,
            Action::ReadSchedule,
            Action::BookAppointments,
            Action::WriteMedicationInstructions,
            Action::StartCourse,
            Action::EditProtocols,
            Action::CalculateDose,
            Action::RunDosingSession,
            Action::ReadFloor,
            Action::KeepPsychotherapyNotes,
            Action::ReadControlledSubstances,
            Action::RecordControlledSubstances,
            Action::ManageControlledSubstanceRegistry,
            Action::ManageDiscrepancies,
            Action::ManageRecordRequests,
            Action::ReadOutcomeReports,
            Action::ReviewCourse,
            Action::ExportClinicalData,
        ],
    ),
    (
        Role::Nurse,
        &[
            Action::OwnAccount,
            Action::StaffHome,
            Action::ListPatients,
            Action::ReadPatient,
            Action::RegisterPatient,
            Action::RecordConsent,
            Action::RecordQuestionnaire,
            Action::ReadSafetyAlerts,
            Action::ReadClinicalRecord,
            Action::RecordConsultation,
            Action::ManagePathway,
            Action::ReadReferenceContent,
            Action::ReadSchedule,
            Action::BookAppointments,
            Action::CalculateDose,
            Action::RunDosingSession,
            Action::ReadFloor,
            Action::ReadControlledSubstances,
            Action::RecordControlledSubstances,
            Action::ManageDiscrepancies,
            Action::ManageRecordRequests,
        ],
    ),
    (
        Role::Therapist,
        &[
            Action::OwnAccount,
            Action::StaffHome,
            Action::ListPatients,
            Action::ReadPatient,
            Action::RegisterPatient,
            Action::RecordConsent,
            Action::RecordQuestionnaire,
            Action::ReadSafetyAlerts,
            Action::AcknowledgeSafetyAlert,
            Action::ReadClinicalRecord,
            Action::RecordConsultation,
            Action::ManagePathway,
            Action::ReadReferenceContent,
            Action::ReadSchedule,
            Action::BookAppointments,
            Action::RunDosingSession,
            Action::ReadFloor,
            Action::KeepPsychotherapyNotes,
            Action::WriteIntegrationNotes,
            Action::ManageRecordRequests,
        ],
    ),
    (
        Role::Frontdesk,
        &[
            Action::OwnAccount,
            Action::StaffHome,
            Action::ListPatients,
            Action::ReadPatient,
            Action::RegisterPatient,
            Action::RecordConsent,
            Action::ReadReferenceContent,
            Action::ReadSchedule,
            Action::BookAppointments,
            Action::ReadFloor,
        ],
    ),
    (Role::Patient, &[Action::OwnAccount, Action::PortalSelf]),
];

/// May an account with `role` perform `action`? `None` is an anonymous request.
pub fn allows(role: Option<Role>, action: Action) -> bool {
    if action == Action::Public {
        return true;
    }
    if matches!(action, Action::CompleteSignIn | Action::SignOut) {
        return role.is_some();
    }
    let Some(role) = role else { return false };
    TABLE.iter().any(|(r, actions)| *r == role && actions.contains(&action))
}

/// What an API token may do (issue 8). A token acts as an integration principal with no role:
/// a route is open to it only when the route's [`Action`] is in one of its scopes' rows of
/// [`SCOPE_TABLE`]. Account, MFA, settings, user, token and webhook management, the audit log,
/// the portal and every decision the domain reserves to a named clinician (signing, dosing,
/// notes, the ledger) are in no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read patients and their clinical record, open safety alerts and reference content.
    ClinicalRead,
    /// Read the schedule; book, reschedule and cancel appointments.
    Scheduling,
    /// Register patients, record consents and enter questionnaires.
    Write,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::ClinicalRead, Scope::Scheduling, Scope::Write];

    /// Stored and sent as this text; never renamed.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::ClinicalRead => "clinical:read",
            Scope::Scheduling => "scheduling",
            Scope::Write => "write",
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Scope::ClinicalRead => "Read-only clinical (patients, clinical record, safety alerts)",
            Scope::Scheduling => "Scheduling (read the schedule, book and change appointments)",
            Scope::Write => "Write (register patients, record consents, enter questionnaires)",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }

    /// The actions this scope opens.
    pub fn actions(self) -> &'static [Action] {
        SCOPE_TABLE.iter().find(|(s, _)| *s == self).map_or(&[], |(_, a)| a)
    }
}

written_as_name!(Scope, "TokenScope");

/// The scope table, scope by action; deny by default, like [`TABLE`].
const SCOPE_TABLE: &[(Scope, &[Action])] = &[
    (
        Scope::ClinicalRead,
        &[
            Action::ListPatients,
            Action::ReadPatient,
            Action::ReadClinicalRecord,
            Action::ReadSafetyAlerts,
            Action::ReadReferenceContent,
        ],
    ),
    (Scope::Scheduling, &[Action::ReadSchedule, Action::BookAppointments]),
    (Scope::Write, &[Action::RegisterPatient, Action::RecordConsent, Action::RecordQuestionnaire]),
];

/// May a token holding `scopes` perform `action`? Public routes are open to anyone.
pub fn scopes_allow(scopes: &[Scope], action: Action) -> bool {
    action == Action::Public || scopes.iter().any(|s| s.actions().contains(&action))
}

/// The roles that may perform `action`, for documentation and for tests.
pub fn roles_allowed(action: Action) -> Vec<Role> {
    Role::ALL.into_iter().filter(|r| allows(Some(*r), action)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_may_only_do_public_actions() {
        for action in Action::ALL {
            assert_eq!(allows(None, action), action == Action::Public, "{action:?}");
        }
    }

    #[test]
    fn patients_never_reach_staff_actions() {
        for action in
            [Action::StaffHome, Action::ListPatients, Action::ReadPatient, Action::ManageUsers, Action::ReadAudit]
        {
            assert!(!allows(Some(Role::Patient), action), "{action:?}");
        }
    }

    #[test]
    fn staff_never_use_the_portal() {
        for role in Role::STAFF {
            assert!(!allows(Some(role), Action::PortalSelf), "{role:?}");
        }
    }

    #[test]
    fn only_admins_manage_users_settings_and_audit() {
        for action in [Action::ManageUsers, Action::ManageSettings, Action::ReadAudit] {
            assert_eq!(roles_allowed(action), vec![Role::Admin], "{action:?}");
        }
    }

    #[test]
    fn only_prescribers_sign_eligibility_decisions() {
        assert_eq!(roles_allowed(Action::SignEligibilityDecision), vec![Role::Prescriber]);
        for role in [Role::Frontdesk, Role::Admin, Role::Patient] {
            assert!(!allows(Some(role), Action::ReadClinicalRecord), "{role:?}");
        }
    }

    #[test]
    fn only_therapists_and_prescribers_keep_psychotherapy_notes() {
        assert_eq!(roles_allowed(Action::KeepPsychotherapyNotes), vec![Role::Prescriber, Role::Therapist]);
    }

    #[test]
    fn integration_notes_are_written_by_the_roles_the_domain_names() {
        for role in Role::ALL {
            assert_eq!(
                allows(Some(role), Action::WriteIntegrationNotes),
                crate::integration_note::may_write(role),
                "{role:?}"
            );
        }
    }

    #[test]
    fn tokens_never_reach_accounts_settings_integrations_or_the_portal() {
        let all = Scope::ALL;
        for action in [
            Action::CompleteSignIn,
            Action::SignOut,
            Action::OwnAccount,
            Action::ManageUsers,
            Action::ManageSettings,
            Action::ManageIntegrations,
            Action::ReadAudit,
            Action::PortalSelf,
            Action::SignEligibilityDecision,
            Action::KeepPsychotherapyNotes,
            Action::RunDosingSession,
            Action::RecordControlledSubstances,
        ] {
            assert!(!scopes_allow(&all, action), "{action:?}");
        }
        assert!(scopes_allow(&[], Action::Public));
        assert!(!scopes_allow(&[], Action::ListPatients));
    }

    #[test]
    fn each_scope_opens_only_its_row() {
        assert!(scopes_allow(&[Scope::ClinicalRead], Action::ReadClinicalRecord));
        assert!(!scopes_allow(&[Scope::ClinicalRead], Action::BookAppointments));
        assert!(!scopes_allow(&[Scope::ClinicalRead], Action::RegisterPatient));
        assert!(scopes_allow(&[Scope::Scheduling], Action::BookAppointments));
        assert!(!scopes_allow(&[Scope::Scheduling], Action::ReadPatient));
        assert!(scopes_allow(&[Scope::Write], Action::RegisterPatient));
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert!(!s.actions().is_empty());
        }
        assert_eq!(Scope::parse("admin"), None);
    }

    #[test]
    fn only_admins_manage_integrations() {
        assert_eq!(roles_allowed(Action::ManageIntegrations), vec![Role::Admin]);
    }

    #[test]
    fn every_role_has_a_row() {
        for role in Role::ALL {
            assert!(TABLE.iter().any(|(r, _)| *r == role), "{role:?}");
        }
    }
}
