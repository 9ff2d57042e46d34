//! The tamper-evident audit chain.
//!
//! Each event stores `hash = SHA-256(prev_hash || canonical(event))`, so editing, deleting or
//! re-ordering any stored event breaks every hash after it. Events are numbered without gaps
//! (`seq` 1, 2, 3, ...) so a deleted event at the end is caught against the stored chain head.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{ClinicId, PatientId, Role, UserId, UtcTs};

/// What happened. Stored as its `as_str()` text; new variants may be added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    SignIn,
    SignInFailed,
    SignInMfaPending,
    AccountLocked,
    SignOut,
    SessionEnded,
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    PasswordChanged,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    SettingsChanged,
    PatientListed,
    PatientRead,
    PatientCreated,
    AuditViewed,
    AuditExported,
    AccessDenied,
    /// A rate limit refused a request (the first refusal of each window is recorded).
    RateLimited,
    /// The account's password (and second factor) was entered again before signing or exporting.
    Reauthenticated,
    QuestionnaireSubmitted,
    SafetyAlertRaised,
    SafetyAlertsViewed,
    SafetyAlertAcknowledged,
    UsersListed,
    UserViewed,
    QuestionnaireAssigned,
    PortalInvited,
    InvitationRedeemed,
    OutboxViewed,
    ConsentSigned,
    ConsentRevoked,
    ConsultationRecorded,
    EligibilityDecisionSigned,
    EligibilityDecisionAmended,
    PathwayChanged,
    AppointmentBooked,
    AppointmentChanged,
    SchedulingConfigured,
    RemsEnrollmentRecorded,
    /// A new version of a dosing protocol (medical director).
    ProtocolChanged,
    /// A dosing session opened for a dosing appointment.
    SessionOpened,
    /// A step of a dosing session recorded (check-in, reading, dose, override, discharge, ...).
    SessionRecorded,
    /// A dosing session read (its page, its API, its printable summary).
    SessionViewed,
    /// A SPRAVATO REMS Patient Monitoring Form submission recorded.
    RemsFormSubmitted,
    /// A psychotherapy note written (and signed) by its author. Ids only, never the text.
    PsychotherapyNoteWritten,
    /// An author read their own psychotherapy notes of a session.
    PsychotherapyNoteRead,
    /// An author amended their own signed psychotherapy note (the original is kept).
    PsychotherapyNoteAmended,
    /// The controlled-substance ledger read: balances, entries, a report (KAP-SPEC 9).
    LedgerRead,
    /// Entries appended to the controlled-substance ledger (ids, kinds and amounts; never names).
    LedgerRecorded,
    /// A location's DEA registration, ledger settings, a product or a lot changed.
    LedgerRegistryChanged,
    /// A discrepancy opened, investigated, judged, reported or closed.
    DiscrepancyRecorded,
    /// Integration notes read (a patient's list, a session's page). Ids and counts only.
    IntegrationNoteRead,
    /// An integration note drafted or its draft edited by its author. Never the text.
    IntegrationNoteDrafted,
    /// An integration note signed by its author: from now on immutable.
    IntegrationNoteSigned,
    /// An amendment appended to a signed integration note (the original is kept).
    IntegrationNoteAmended,
    /// A journal entry written, edited or deleted by its patient. Never the text.
    JournalWritten,
    /// A journal entry shared with the care team, or its sharing withdrawn.
    JournalShared,
    /// Journal entries read: the patient's own list, or a shared entry by the care team.
    JournalRead,
    /// A psychotherapy note shared by its author with one named colleague (ids only).
    PsychotherapyNoteShared,
    /// The author withdrew a psychotherapy note's share.
    PsychotherapyNoteShareWithdrawn,
    /// A named colleague read a psychotherapy note shared with them (ids only).
    SharedPsychotherapyNoteRead,
    /// A patient's request for access to or amendment of their record received (portal or staff).
    RecordRequestReceived,
    /// A step on a record request: extension, answer, disagreement, rebuttal (ids and kinds only).
    RecordRequestStep,
    /// Record requests read (the staff list, or a patient's own).
    RecordRequestsRead,
    /// The designated record set exported for an access request (ids only).
    RecordExported,
    /// The measurement-cadence job assigned a due questionnaire to the portal (KAP-SPEC 7.10).
    MeasureAssigned,
    /// Due and overdue measures read by staff.
    MeasuresRead,
    /// A patient's measured outcomes read (chart, API, portal): ids and instruments only.
    OutcomesRead,
    /// The clinic outcome dashboard read or exported (aggregates; the period and location).
    OutcomeReportRead,
    /// A prescriber's course review recorded: continue, modify or stop (ids and the decision).
    CourseReviewed,
    /// An API token created (its id, name and scopes; never the secret).
    ApiTokenCreated,
    /// An API token revoked.
    ApiTokenRevoked,
    /// An API token used for a request (the token's id and the path; issue 8).
    ApiTokenUsed,
    /// A webhook endpoint registered, changed, switched off or on (its id and events).
    WebhookEndpointChanged,
    /// A webhook delivery queued again by an admin.
    WebhookRedelivered,
    /// FHIR resources read or searched (issue 8): the resource type, ids or the count, the
    /// patient when one is named. Never resource content.
    FhirRead,
    /// A FHIR Bulk Data export requested (level, types; ids only).
    FhirExportRequested,
    /// A FHIR Bulk Data export job finished: resource counts per type, or its failure.
    FhirExportCompleted,
    /// One NDJSON file of an export downloaded by its requester.
    FhirExportDownloaded,
}

impl AuditAction {
    pub const ALL: [AuditAction; 83] = [
        Self::SignIn,
        Self::SignInFailed,
        Self::SignInMfaPending,
        Self::AccountLocked,
        Self::SignOut,
        Self::SessionEnded,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDeactivated,
        Self::UserReactivated,
        Self::PasswordChanged,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::RecoveryCodeUsed,
        Self::SettingsChanged,
        Self::PatientListed,
        Self::PatientRead,
        Self::PatientCreated,
        Self::AuditViewed,
        Self::AuditExported,
        Self::AccessDenied,
        Self::RateLimited,
        Self::Reauthenticated,
        Self::QuestionnaireSubmitted,
        Self::SafetyAlertRaised,
        Self::SafetyAlertsViewed,
        Self::SafetyAlertAcknowledged,
        Self::UsersListed,
        Self::UserViewed,
        Self::QuestionnaireAssigned,
        Self::PortalInvited,
        Self::InvitationRedeemed,
        Self::OutboxViewed,
        Self::ConsentSigned,
        Self::ConsentRevoked,
        Self::ConsultationRecorded,
        Self::EligibilityDecisionSigned,
        Self::EligibilityDecisionAmended,
        Self::PathwayChanged,
        Self::AppointmentBooked,
        Self::AppointmentChanged,
        Self::SchedulingConfigured,
        Self::RemsEnrollmentRecorded,
        Self::ProtocolChanged,
        Self::SessionOpened,
        Self::SessionRecorded,
        Self::SessionViewed,
        Self::RemsFormSubmitted,
        Self::PsychotherapyNoteWritten,
        Self::PsychotherapyNoteRead,
        Self::PsychotherapyNoteAmended,
        Self::LedgerRead,
        Self::LedgerRecorded,
        Self::LedgerRegistryChanged,
        Self::DiscrepancyRecorded,
        Self::IntegrationNoteRead,
        Self::IntegrationNoteDrafted,
        Self::IntegrationNoteSigned,
        Self::IntegrationNoteAmended,
        Self::JournalWritten,
        Self::JournalShared,
        Self::JournalRead,
        Self::PsychotherapyNoteShared,
        Self::PsychotherapyNoteShareWithdrawn,
        Self::SharedPsychotherapyNoteRead,
        Self::RecordRequestReceived,
        Self::RecordRequestStep,
        Self::RecordRequestsRead,
        Self::RecordExported,
        Self::MeasureAssigned,
        Self::MeasuresRead,
        Self::OutcomesRead,
        Self::OutcomeReportRead,
        Self::CourseReviewed,
        Self::ApiTokenCreated,
        Self::ApiTokenRevoked,
        Self::ApiTokenUsed,
        Self::WebhookEndpointChanged,
        Self::WebhookRedelivered,
        Self::FhirRead,
        Self::FhirExportRequested,
        Self::FhirExportCompleted,
        Self::FhirExportDownloaded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "auth.sign_in",
            Self::SignInFailed => "auth.sign_in_failed",
            Self::SignInMfaPending => "auth.sign_in_mfa_pending",
            Self::AccountLocked => "auth.account_locked",
            Self::SignOut => "auth.sign_out",
            Self::SessionEnded => "auth.session_ended",
            Self::UserCreated => "user.create",
            Self::UserUpdated => "user.update",
            Self::UserDeactivated => "user.deactivate",
            Self::UserReactivated => "user.reactivate",
            Self::PasswordChanged => "user.password_change",
            Self::MfaEnabled => "user.mfa_enable",
            Self::MfaDisabled => "user.mfa_disable",
            Self::RecoveryCodeUsed => "auth.recovery_code_used",
            Self::SettingsChanged => "settings.update",
            Self::PatientListed => "patient.list",
            Self::PatientRead => "patient.read",
            Self::PatientCreated => "patient.create",
            Self::AuditViewed => "audit.view",
            Self::AuditExported => "audit.export",
            Self::AccessDenied => "access.denied",
            Self::RateLimited => "access.rate_limited",
            Self::Reauthenticated => "auth.reauthenticated",
            Self::QuestionnaireSubmitted => "questionnaire.submit",
            Self::SafetyAlertRaised => "safety_alert.raise",
            Self::SafetyAlertsViewed => "safety_alert.list",
            Self::SafetyAlertAcknowledged => "safety_alert.acknowledge",
            Self::UsersListed => "user.list",
            Self::UserViewed => "user.read",
            Self::QuestionnaireAssigned => "questionnaire.assign",
            Self::PortalInvited => "patient.invite",
            Self::InvitationRedeemed => "patient.invitation_redeem",
            Self::OutboxViewed => "outbox.view",
            Self::ConsentSigned => "consent.sign",
            Self::ConsentRevoked => "consent.revoke",
            Self::ConsultationRecorded => "consultation.record",
            Self::EligibilityDecisionSigned => "eligibility.sign",
            Self::EligibilityDecisionAmended => "eligibility.amend",
            Self::PathwayChanged => "pathway.change",
            Self::AppointmentBooked => "appointment.book",
            Self::AppointmentChanged => "appointment.change",
            Self::SchedulingConfigured => "scheduling.configure",
            Self::RemsEnrollmentRecorded => "rems.enroll",
            Self::ProtocolChanged => "protocol.change",
            Self::SessionOpened => "session.open",
            Self::SessionRecorded => "session.record",
            Self::SessionViewed => "session.view",
            Self::RemsFormSubmitted => "rems_form.submit",
            Self::PsychotherapyNoteWritten => "psychotherapy_note.write",
            Self::PsychotherapyNoteRead => "psychotherapy_note.read",
            Self::PsychotherapyNoteAmended => "psychotherapy_note.amend",
            Self::LedgerRead => "cs_ledger.read",
            Self::LedgerRecorded => "cs_ledger.record",
            Self::LedgerRegistryChanged => "cs_ledger.registry",
            Self::DiscrepancyRecorded => "cs_ledger.discrepancy",
            Self::IntegrationNoteRead => "integration_note.read",
            Self::IntegrationNoteDrafted => "integration_note.draft",
            Self::IntegrationNoteSigned => "integration_note.sign",
            Self::IntegrationNoteAmended => "integration_note.amend",
            Self::JournalWritten => "journal.write",
            Self::JournalShared => "journal.share",
            Self::JournalRead => "journal.read",
            Self::PsychotherapyNoteShared => "psychotherapy_note.share",
            Self::PsychotherapyNoteShareWithdrawn => "psychotherapy_note.unshare",
            Self::SharedPsychotherapyNoteRead => "psychotherapy_note.read_shared",
            Self::RecordRequestReceived => "record_request.receive",
            Self::RecordRequestStep => "record_request.step",
            Self::RecordRequestsRead => "record_request.read",
            Self::RecordExported => "record.export",
            Self::MeasureAssigned => "measure.assign",
            Self::MeasuresRead => "measure.read",
            Self::OutcomesRead => "outcomes.read",
            Self::OutcomeReportRead => "outcomes.report",
            Self::CourseReviewed => "course.review",
            Self::ApiTokenCreated => "api_token.create",
            Self::ApiTokenRevoked => "api_token.revoke",
            Self::ApiTokenUsed => "api_token.use",
            Self::WebhookEndpointChanged => "webhook.endpoint_change",
            Self::WebhookRedelivered => "webhook.redeliver",
            Self::FhirRead => "fhir.read",
            Self::FhirExportRequested => "fhir.export_request",
            Self::FhirExportCompleted => "fhir.export_complete",
            Self::FhirExportDownloaded => "fhir.export_download",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// Described as stored: one of the names of [`AuditAction::ALL`].
impl schemars::JsonSchema for AuditAction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AuditAction".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// Described as stored.
impl schemars::JsonSchema for Outcome {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AuditOutcome".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = [Self::Success, Self::Failure, Self::Denied].iter().map(|o| o.as_str()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// An event before it is placed in the chain. Carries ids only: never names, notes or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub clinic_id: Option<ClinicId>,
    pub actor_user_id: Option<UserId>,
    pub actor_role: Option<Role>,
    pub action: AuditAction,
    pub entity_type: &'static str,
    pub entity_id: Option<String>,
    pub patient_id: Option<PatientId>,
    pub source_ip: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// The API token the request came with, when an integration acted (issue 8).
    pub actor_token_id: Option<String>,
}

impl NewAuditEvent {
    pub fn new(action: AuditAction, entity_type: &'static str, outcome: Outcome) -> Self {
        Self {
            clinic_id: None,
            actor_user_id: None,
            actor_role: None,
            action,
            entity_type,
            entity_id: None,
            patient_id: None,
            source_ip: None,
            outcome,
            reason: None,
            actor_token_id: None,
        }
    }
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of the first event.
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// The digest of 64 hex digits (either case), as `hex::decode` reads them; `None` for any
    /// other text. By table, without a branch per digit: verification reads a hash per event.
    pub fn from_hex(s: &str) -> Option<Self> {
        let (pairs, rest) = s.as_bytes().as_chunks::<2>();
        if pairs.len() != 32 || !rest.is_empty() {
            return None;
        }
        let mut out = [0u8; 32];
        let mut seen = 0u8;
        for (o, [hi, lo]) in out.iter_mut().zip(pairs) {
            let (hi, lo) = (HEX_DIGIT[usize::from(*hi)], HEX_DIGIT[usize::from(*lo)]);
            seen |= hi | lo;
            *o = (hi << 4) | lo;
        }
        (seen & 0xF0 == 0).then_some(Self(out))
    }
}

/// The value of each hex digit, `0xFF` for a byte that is not one.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// An event as stored: every field that is hashed, as text, exactly as read back from the
/// database. Verification works on this form so it needs no knowledge of the enums above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub seq: i64,
    pub at: UtcTs,
    pub clinic_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub patient_id: Option<String>,
    pub source_ip: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// Hashed only when present, so events written before the column existed keep their hash.
    pub actor_token_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// A free-text field as it is stored and hashed: a NUL, which PostgreSQL cannot hold in text, as
/// U+FFFD on both engines. The event of a request carrying a NUL is then written like any other,
/// instead of failing the whole group commit it shares with other requests.
fn storable(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.to_owned() }
}

impl StoredAuditEvent {
    /// Places `event` after `prev` (`None` for the first event) and computes its hash.
    pub fn chain(event: &NewAuditEvent, at: UtcTs, prev: Option<(i64, Hash)>) -> Self {
        let (prev_seq, prev_hash) = prev.unwrap_or((0, Hash::GENESIS));
        let mut stored = Self {
            seq: prev_seq + 1,
            at,
            clinic_id: event.clinic_id.map(|c| c.to_string()),
            actor_user_id: event.actor_user_id.map(|u| u.to_string()),
            actor_role: event.actor_role.map(|r| r.as_str().to_owned()),
            action: event.action.as_str().to_owned(),
            entity_type: event.entity_type.to_owned(),
            entity_id: event.entity_id.as_deref().map(storable),
            patient_id: event.patient_id.map(|p| p.to_string()),
            source_ip: event.source_ip.as_deref().map(storable),
            outcome: event.outcome.as_str().to_owned(),
            reason: event.reason.as_deref().map(storable),
            actor_token_id: event.actor_token_id.as_deref().map(storable),
            prev_hash: prev_hash.to_hex(),
            hash: String::new(),
        };
        stored.hash = stored.compute_hash(prev_hash).to_hex();
        stored
    }

    /// SHA-256 over the previous hash and a length-prefixed encoding of every field, so no two
    /// different events share an encoding (`"ab" + "c"` differs from `"a" + "bc"`, and an absent
    /// value differs from an empty one).
    pub fn compute_hash(&self, prev: Hash) -> Hash {
        self.view().compute_hash(prev)
    }

    /// The event's fields, borrowed.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            seq: self.seq,
            at_micros: self.at.unix_micros(),
            clinic_id: self.clinic_id.as_deref(),
            actor_user_id: self.actor_user_id.as_deref(),
            actor_role: self.actor_role.as_deref(),
            action: &self.action,
            entity_type: &self.entity_type,
            entity_id: self.entity_id.as_deref(),
            patient_id: self.patient_id.as_deref(),
            source_ip: self.source_ip.as_deref(),
            outcome: &self.outcome,
            reason: self.reason.as_deref(),
            actor_token_id: self.actor_token_id.as_deref(),
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// A stored event's fields borrowed from wherever they were read (verification reads them
/// straight out of the database row, without copying each into a `String`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventView<'a> {
    pub seq: i64,
    pub at_micros: i64,
    pub clinic_id: Option<&'a str>,
    pub actor_user_id: Option<&'a str>,
    pub actor_role: Option<&'a str>,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<&'a str>,
    pub patient_id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub actor_token_id: Option<&'a str>,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

impl EventView<'_> {
    /// See [`StoredAuditEvent::compute_hash`]: the same bytes, hashed without allocating.
    pub fn compute_hash(&self, prev: Hash) -> Hash {
        let mut h = Sha256::new();
        self.encode(prev, |b| h.update(b));
        Hash(h.finalize().into())
    }

    /// Feeds `put` the bytes the event's hash is taken over, in order: the hash it follows, then
    /// every field (`len:bytes;`, `~;` when absent). The one encoding, whether hashed at once
    /// ([`Self::compute_hash`]) or gathered for hashing in a batch ([`SegmentVerifier`]).
    fn encode(&self, prev: Hash, mut put: impl FnMut(&[u8])) {
        put(&prev.0);
        let mut seq = [0u8; 20];
        put_field(&mut put, Some(decimal(self.seq, &mut seq)));
        let mut at = [0u8; 20];
        put_field(&mut put, Some(decimal(self.at_micros, &mut at)));
        for v in [self.clinic_id, self.actor_user_id, self.actor_role, Some(self.action), Some(self.entity_type)] {
            put_field(&mut put, v.map(str::as_bytes));
        }
        for v in [self.entity_id, self.patient_id, self.source_ip, Some(self.outcome), self.reason] {
            put_field(&mut put, v.map(str::as_bytes));
        }
        if let Some(token) = self.actor_token_id {
            put_field(&mut put, Some(token.as_bytes()));
        }
    }
}

/// `n` in decimal, as `n.to_string()` writes it, into `buf` (20 bytes hold any `i64`).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Adds one field to a chain hash: `len:bytes;` for a value, `~;` for an absent one. Shared by
/// every hash chain of the domain (the audit log, the controlled-substance ledger), so both
/// encode their fields the same way.
pub(crate) fn hash_field(h: &mut Sha256, v: Option<&str>) {
    put_field(&mut |b: &[u8]| h.update(b), v.map(str::as_bytes));
}

fn put_field(put: &mut impl FnMut(&[u8]), v: Option<&[u8]>) {
    match v {
        None => put(b"~;"),
        Some(s) => {
            let mut len = [0u8; 20];
            put(decimal(i64::try_from(s.len()).unwrap_or(i64::MAX), &mut len));
            put(b":");
            put(s);
            put(b";");
        }
    }
}

/// Why a chain failed verification; names the first bad event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event {expected} is missing (next stored event is {found})")]
    Missing { expected: i64, found: i64 },
    #[error("event {seq} does not follow the event before it (its prev_hash does not match)")]
    Broken { seq: i64 },
    #[error("event {seq} was altered (its content does not match its hash)")]
    Altered { seq: i64 },
    #[error(
        "the chain ends at event {last} but the chain head records {head} events (events were deleted from the end)"
    )]
    Truncated { last: i64, head: i64 },
    #[error("the chain head records {head} events but event {last} was found after it")]
    HeadBehind { last: i64, head: i64 },
    #[error("the chain head hash does not match the last event")]
    HeadMismatch,
}

/// Streaming verifier: feed events in `seq` order, then call [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: i64,
    prev: Hash,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { next_seq: 1, prev: Hash::GENESIS }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, e: &StoredAuditEvent) -> Result<(), ChainBreak> {
        self.push_view(&e.view())
    }

    pub fn push_view(&mut self, e: &EventView<'_>) -> Result<(), ChainBreak> {
        if e.seq != self.next_seq {
            return Err(ChainBreak::Missing { expected: self.next_seq, found: e.seq });
        }
        if Hash::from_hex(e.prev_hash) != Some(self.prev) {
            return Err(ChainBreak::Broken { seq: e.seq });
        }
        let computed = e.compute_hash(self.prev);
        if Hash::from_hex(e.hash) != Some(computed) {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        self.prev = computed;
        self.next_seq += 1;
        Ok(())
    }

    /// Checks the end of the chain against the stored head (`seq`, `hash`); returns the count.
    pub fn finish(self, head: Option<(i64, Hash)>) -> Result<i64, ChainBreak> {
        finish(self.next_seq - 1, self.prev, head)
    }
}

fn finish(last: i64, last_hash: Hash, head: Option<(i64, Hash)>) -> Result<i64, ChainBreak> {
    let (head_seq, head_hash) = head.unwrap_or((0, Hash::GENESIS));
    if head_seq > last {
        return Err(ChainBreak::Truncated { last, head: head_seq });
    }
    if head_seq < last {
        return Err(ChainBreak::HeadBehind { last, head: head_seq });
    }
    if head_hash != last_hash {
        return Err(ChainBreak::HeadMismatch);
    }
    Ok(last)
}

/// Verifies one stretch of the chain on its own, so stretches can be checked in parallel: every
/// event stores the hash it follows, so an event's own hash is checked against its stored
/// `prev_hash`, each event's `prev_hash` against the stored hash of the event before it in the
/// stretch, and the stretch's first `prev_hash` against the end of the stretch before it when the
/// stretches are joined ([`join_segments`]). Feed the events read from `seq >= start` in `seq`
/// order, up to the stretch's length (fewer when the chain ends).
///
/// Every check of [`ChainVerifier`] is made, in the same order, so the first break found in the
/// whole chain is the same one: an event whose content was changed (`Altered`), one rewritten
/// with a recomputed hash (the next event's `prev_hash` no longer matches: `Broken`), a deleted
/// or reordered one (`seq` out of place: `Missing`), a deleted tail (against the chain head).
#[derive(Debug)]
pub struct SegmentVerifier {
    start: i64,
    next_seq: i64,
    first_prev: Option<Hash>,
    last: Option<Hash>,
    brk: Option<ChainBreak>,
    queued: Queued,
    batch: usize,
}

/// Events pushed but not yet checked, with the bytes each one's hash is taken over. Hashing
/// independent messages side by side (one per SIMD lane, or interleaved on the CPU's SHA unit)
/// takes a fraction of the time of hashing them one after another, and every event's hash here is
/// independent of the others: it is taken over the `prev_hash` the event stores, which the checks
/// then compare with the event before it.
#[derive(Debug, Default)]
struct Queued {
    events: Vec<QueuedEvent>,
    bytes: Vec<u8>,
    /// The stored text of the last queued event's hash.
    last_text: Vec<u8>,
}

#[derive(Debug)]
struct QueuedEvent {
    seq: i64,
    prev: Option<Hash>,
    stored: Option<Hash>,
    end: usize,
}

/// Events hashed together by [`SegmentVerifier`]: enough to fill the widest kernel's lanes many
/// times over, few enough that the bytes stay in the CPU's cache.
const VERIFY_BATCH: usize = 256;

/// What [`SegmentVerifier`] found in its stretch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The first `seq` of the stretch.
    pub start: i64,
    /// The `prev_hash` stored in the stretch's first event, when that event is in place.
    pub first_prev: Option<Hash>,
    /// The last event checked and its hash (`None` when the stretch holds no event).
    pub last: Option<(i64, Hash)>,
    /// The first break inside the stretch.
    pub brk: Option<ChainBreak>,
}

impl SegmentVerifier {
    pub fn new(start: i64) -> Self {
        Self::with_batch(start, VERIFY_BATCH)
    }

    /// Checks events `batch` at a time (tests put breaks on either side of a batch's end).
    fn with_batch(start: i64, batch: usize) -> Self {
        Self { start, next_seq: start, first_prev: None, last: None, brk: None, queued: Queued::default(), batch }
    }

    /// Takes the next event. Events are checked in batches, in the order pushed: `Err` once a
    /// break is found (later events are not looked at); [`Self::finish`] checks the rest.
    pub fn push(&mut self, e: &EventView<'_>) -> Result<(), ChainBreak> {
        if let Some(b) = &self.brk {
            return Err(b.clone());
        }
        // In a chain left alone an event's `prev_hash` is the text of the hash stored before it,
        // already read: one hash decoded per event, not two.
        let prev = match self.queued.events.last() {
            Some(before) if self.queued.last_text == e.prev_hash.as_bytes() => before.stored,
            _ => Hash::from_hex(e.prev_hash),
        };
        // An event whose `prev_hash` cannot be read breaks the chain before its hash is needed.
        if let Some(prev) = prev {
            e.encode(prev, |b| self.queued.bytes.extend_from_slice(b));
        }
        self.queued.last_text.clear();
        self.queued.last_text.extend_from_slice(e.hash.as_bytes());
        self.queued.events.push(QueuedEvent {
            seq: e.seq,
            prev,
            stored: Hash::from_hex(e.hash),
            end: self.queued.bytes.len(),
        });
        if self.queued.events.len() >= self.batch { self.check_queued() } else { Ok(()) }
    }

    /// Hashes the queued events together, then checks them one by one, each exactly as
    /// [`ChainVerifier`] would.
    fn check_queued(&mut self) -> Result<(), ChainBreak> {
        let queued = std::mem::take(&mut self.queued);
        let mut messages = Vec::with_capacity(queued.events.len());
        let mut begin = 0;
        for q in &queued.events {
            messages.push(queued.bytes.get(begin..q.end).unwrap_or_default());
            begin = q.end;
        }
        let mut hashes = vec![[0u8; 32]; messages.len()];
        tape_sha256::hash_many(&messages, &mut hashes);
        for (q, computed) in queued.events.iter().zip(hashes) {
            if let Err(b) = self.check(q, Hash(computed)) {
                self.brk = Some(b.clone());
                return Err(b);
            }
        }
        // The buffers kept for the next batch.
        self.queued = Queued { events: queued.events, bytes: queued.bytes, last_text: Vec::new() };
        self.queued.events.clear();
        self.queued.bytes.clear();
        Ok(())
    }

    fn check(&mut self, e: &QueuedEvent, computed: Hash) -> Result<(), ChainBreak> {
        if e.seq != self.next_seq {
            return Err(ChainBreak::Missing { expected: self.next_seq, found: e.seq });
        }
        let prev = e.prev.ok_or(ChainBreak::Broken { seq: e.seq })?;
        match self.last {
            // The first event's link is checked when the stretches are joined.
            None => self.first_prev = Some(prev),
            Some(last) if last != prev => return Err(ChainBreak::Broken { seq: e.seq }),
            Some(_) => {}
        }
        if e.stored != Some(computed) {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        self.last = Some(computed);
        self.next_seq += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Segment {
        if self.brk.is_none() && !self.queued.events.is_empty() {
            // A break found here is kept in `brk`.
            let _ = self.check_queued();
        }
        Segment {
            start: self.start,
            first_prev: self.first_prev,
            last: self.last.map(|h| (self.next_seq - 1, h)),
            brk: self.brk,
        }
    }
}

/// Joins the stretches of a chain, in `seq` order, each starting where the one before was planned
/// to end (`start` = previous `start` + its length; a stretch that ended early ends the chain),
/// and checks the end against the stored head. Returns the number of events or the first break.
pub fn join_segments(
    segments: impl IntoIterator<Item = Segment>,
    head: Option<(i64, Hash)>,
) -> Result<i64, ChainBreak> {
    let (mut last_seq, mut last_hash) = (0, Hash::GENESIS);
    for s in segments {
        if s.start != last_seq + 1 {
            // The stretch before ended early: the chain ends there.
            break;
        }
        // The first event's link to the stretch before (checked before anything else about it,
        // as the sequential verifier would).
        if let Some(prev) = s.first_prev
            && prev != last_hash
        {
            return Err(ChainBreak::Broken { seq: s.start });
        }
        if let Some(b) = s.brk {
            return Err(b);
        }
        match s.last {
            Some((seq, hash)) => (last_seq, last_hash) = (seq, hash),
            None => break,
        }
    }
    finish(last_seq, last_hash, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_of(n: usize) -> Vec<StoredAuditEvent> {
        let mut out: Vec<StoredAuditEvent> = Vec::new();
        for i in 0..n {
            let mut e = NewAuditEvent::new(AuditAction::PatientRead, "patient", Outcome::Success);
            e.entity_id = Some(format!("p{i}"));
            let prev = out.last().map(|p| (p.seq, Hash::from_hex(&p.hash).unwrap_or(Hash::GENESIS)));
            out.push(StoredAuditEvent::chain(&e, UtcTs::from_unix_micros(1_000 + i as i64), prev));
        }
        out
    }

    fn verify(events: &[StoredAuditEvent], head: Option<(i64, Hash)>) -> Result<i64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.push(e)?;
        }
        v.finish(head)
    }

    fn head(events: &[StoredAuditEvent]) -> Option<(i64, Hash)> {
        events.last().and_then(|e| Hash::from_hex(&e.hash).map(|h| (e.seq, h)))
    }

    #[test]
    fn a_nul_in_free_text_is_stored_and_hashed_as_a_replacement_character() {
        let mut e = NewAuditEvent::new(AuditAction::PatientRead, "patient", Outcome::Denied);
        e.reason = Some("bad\0input".into());
        e.entity_id = Some("\0".into());
        let s = StoredAuditEvent::chain(&e, UtcTs::from_unix_micros(1), None);
        assert_eq!(s.reason.as_deref(), Some("bad\u{FFFD}input"));
        assert_eq!(s.entity_id.as_deref(), Some("\u{FFFD}"));
        // The hash is of the text as stored, so the stored event verifies.
        assert_eq!(verify(std::slice::from_ref(&s), head(std::slice::from_ref(&s))), Ok(1));
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain_of(5);
        assert_eq!(verify(&c, head(&c)), Ok(5));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn an_altered_field_is_found() {
        let mut c = chain_of(5);
        let h = head(&c);
        c[2].entity_id = Some("someone-else".into());
        assert_eq!(verify(&c, h), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn a_recomputed_event_breaks_the_next_link() {
        let mut c = chain_of(5);
        let h = head(&c);
        c[1].reason = Some("edited".into());
        let prev = Hash::from_hex(&c[1].prev_hash).unwrap_or(Hash::GENESIS);
        c[1].hash = c[1].compute_hash(prev).to_hex();
        assert_eq!(verify(&c, h), Err(ChainBreak::Broken { seq: 3 }));
    }

    #[test]
    fn a_deleted_event_is_found() {
        let mut c = chain_of(5);
        let h = head(&c);
        c.remove(3);
        assert_eq!(verify(&c, h), Err(ChainBreak::Missing { expected: 4, found: 5 }));
    }

    #[test]
    fn deleting_the_tail_is_found_against_the_head() {
        let mut c = chain_of(5);
        let h = head(&c);
        c.truncate(3);
        assert_eq!(verify(&c, h), Err(ChainBreak::Truncated { last: 3, head: 5 }));
    }

    /// What the store does: stretch `i` reads the events with `seq >= 1 + i * len` in `seq`
    /// order, at most `len` of them, up to the larger of the head and the last stored `seq`.
    fn verify_in_segments(
        events: &[StoredAuditEvent],
        head: Option<(i64, Hash)>,
        len: usize,
        batch: usize,
    ) -> Result<i64, ChainBreak> {
        let mut sorted = events.to_vec();
        sorted.sort_by_key(|e| e.seq);
        let last = sorted.last().map_or(0, |e| e.seq).max(head.map_or(0, |h| h.0));
        let mut segments = Vec::new();
        let mut start = 1;
        while start <= last {
            let mut v = SegmentVerifier::with_batch(start, batch);
            for e in sorted.iter().filter(|e| e.seq >= start).take(len) {
                if v.push(&e.view()).is_err() {
                    break;
                }
            }
            segments.push(v.finish());
            start += len as i64;
        }
        join_segments(segments, head)
    }

    fn sequential(events: &[StoredAuditEvent], head: Option<(i64, Hash)>) -> Result<i64, ChainBreak> {
        let mut sorted = events.to_vec();
        sorted.sort_by_key(|e| e.seq);
        verify(&sorted, head)
    }

    /// Every way of tampering, at every place, found by the stretches exactly as by the
    /// sequential verifier, whatever the stretch length (a stretch of one event makes every
    /// event a boundary; longer ones put the tamper in the middle, first or last place).
    /// (what was done, the stored events, the chain head).
    type TamperCase = (String, Vec<StoredAuditEvent>, Option<(i64, Hash)>);

    #[test]
    fn stretches_find_the_same_first_break_as_the_sequential_verifier() {
        const N: usize = 12;
        let clean = chain_of(N);
        let h = head(&clean);
        let mut cases: Vec<TamperCase> = vec![("intact".into(), clean.clone(), h)];
        for k in 0..N {
            let mut c = clean.clone();
            c[k].reason = Some("edited".into());
            cases.push((format!("altered {k}"), c.clone(), h));
            let prev = Hash::from_hex(&c[k].prev_hash).unwrap_or(Hash::GENESIS);
            c[k].hash = c[k].compute_hash(prev).to_hex();
            cases.push((format!("altered and rehashed {k}"), c, h));
            let mut c = clean.clone();
            c.remove(k);
            cases.push((format!("deleted {k}"), c, h));
            let mut c = clean.clone();
            c.truncate(k);
            cases.push((format!("tail deleted from {k}"), c, h));
            if k + 1 < N {
                // Reordered: two events trade places (each keeps the other's number).
                let mut c = clean.clone();
                let (a, b) = (c[k].seq, c[k + 1].seq);
                c[k].seq = b;
                c[k + 1].seq = a;
                cases.push((format!("swapped {k}"), c, h));
                // Reordered content: the numbers stay, the events move.
                let mut c = clean.clone();
                c.swap(k, k + 1);
                let (a, b) = (c[k].seq, c[k + 1].seq);
                c[k].seq = b;
                c[k + 1].seq = a;
                cases.push((format!("moved {k}"), c, h));
            }
        }
        let mut longer = chain_of(N + 2);
        longer.truncate(N + 1);
        cases.push(("an event after the head".into(), longer, h));
        cases.push(("head hash".into(), clean.clone(), h.map(|(s, _)| (s, Hash([7; 32])))));
        for (name, events, head) in &cases {
            let expected = sequential(events, *head);
            if name != "intact" {
                assert!(expected.is_err(), "{name}: the sequential verifier missed it");
            }
            for len in 1..=N + 2 {
                // Batches of 1 to 5 end on every side of every tamper; 256 holds the whole chain.
                for batch in [1, 2, 3, 4, 5, VERIFY_BATCH] {
                    assert_eq!(
                        verify_in_segments(events, *head, len, batch),
                        expected,
                        "{name}, stretches of {len}, batches of {batch}"
                    );
                }
            }
        }
    }

    /// The batch hashing picks its kernel by the CPU it runs on (SHA unit, AVX-512, AVX2 or
    /// plain): on whichever CPU the tests run, it must give SHA-256, for every length around the
    /// 64-byte block and padding boundaries and batches that leave lanes empty.
    #[test]
    fn batched_hashes_are_sha256_for_every_length() {
        let bytes: Vec<u8> = (0..800u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for count in [1, 3, 8, 15, 16, 17, 33, 700] {
            let messages: Vec<&[u8]> = (0..count).map(|i| &bytes[(i * 7) % 100..][..(i * 37) % 700]).collect();
            let mut batched = vec![[0u8; 32]; count];
            tape_sha256::hash_many(&messages, &mut batched);
            for (m, h) in messages.iter().zip(&batched) {
                assert_eq!(*h, <[u8; 32]>::from(Sha256::digest(m)), "{} bytes in a batch of {count}", m.len());
            }
        }
        let every_length: Vec<&[u8]> = (0..=700).map(|n| &bytes[..n]).collect();
        let mut batched = vec![[0u8; 32]; every_length.len()];
        tape_sha256::hash_many(&every_length, &mut batched);
        for (m, h) in every_length.iter().zip(&batched) {
            assert_eq!(*h, <[u8; 32]>::from(Sha256::digest(m)), "{} bytes", m.len());
        }
    }

    /// The table decoder reads exactly what the `hex` crate reads: 64 digits of either case.
    #[test]
    fn hashes_read_back_from_hex_as_the_hex_crate_reads_them() {
        fn by_crate(s: &str) -> Option<Hash> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(s, &mut out).ok().map(|()| Hash(out))
        }
        let digest = Hash(core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11)));
        let lower = digest.to_hex();
        let mut cases = vec![lower.clone(), lower.to_uppercase(), String::new(), lower[..62].to_owned()];
        cases.push(format!("{lower}00"));
        for at in [0, 1, 31, 62, 63] {
            for c in ['g', 'G', '/', ':', '@', '`', ' ', 'é', '\0'] {
                let mut t: Vec<char> = lower.chars().collect();
                t[at] = c;
                cases.push(t.into_iter().collect());
            }
        }
        for case in &cases {
            assert_eq!(Hash::from_hex(case), by_crate(case), "{case:?}");
        }
        assert_eq!(Hash::from_hex(&lower), Some(digest));
        assert_eq!(Hash::from_hex(&lower.to_uppercase()), Some(digest));
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_as_hex_as_the_hex_crate_reads_it(s in "[0-9a-fA-Fg-z]{60,66}") {
            let mut out = [0u8; 32];
            let by_crate = hex::decode_to_slice(&s, &mut out).ok().map(|()| Hash(out));
            proptest::prop_assert_eq!(Hash::from_hex(&s), by_crate);
        }
    }

    /// An event whose `prev_hash` is the hash before it in capitals still follows it (both read
    /// as the same digest), as the sequential verifier finds.
    #[test]
    fn a_link_written_in_capitals_is_read_as_the_same_digest() {
        let mut c = chain_of(6);
        let h = head(&c);
        c[3].prev_hash = c[3].prev_hash.to_uppercase();
        assert_eq!(sequential(&c, h), Ok(6));
        for batch in [1, 2, 4, VERIFY_BATCH] {
            assert_eq!(verify_in_segments(&c, h, 6, batch), Ok(6), "batches of {batch}");
        }
    }

    #[test]
    fn numbers_hash_as_their_decimal_text() {
        for n in [0, 7, 10, 99, 100, 12_345, -1, -80, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn absent_and_empty_values_hash_differently() {
        let mut a = NewAuditEvent::new(AuditAction::SignIn, "user", Outcome::Success);
        let mut b = a.clone();
        a.reason = None;
        b.reason = Some(String::new());
        let at = UtcTs::from_unix_micros(1);
        assert_ne!(StoredAuditEvent::chain(&a, at, None).hash, StoredAuditEvent::chain(&b, at, None).hash);
    }

    #[test]
    fn action_names_are_unique_and_parse_back() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
    }
}
