//! Patients' rights over their record (KAP-SPEC 10, HIPAA; TV-HIP-1..3): requests for access
//! and for amendment with their deadlines, the amendment's accept/deny with the statement of
//! disagreement and the rebuttal linked, and which records belong in the designated record set.
//!
//! Deadlines are calendar days from the day the request was received, and they are law, not
//! clinic settings:
//! - access: act within 30 days, with **one** extension of up to 30 days "with written reasons"
//!   (45 CFR 164.524 [S62]; TV-HIP-1);
//! - amendment: act within 60 days, with one 30-day extension "with written notice" (45 CFR
//!   164.526 [S63]; TV-HIP-2).
//!
//! An extension is given within the first period: a deadline already missed cannot be extended
//! (the written notice is due "within the time limit" of the first period [S62][S63]).

use jiff::ToSpan;
use jiff::civil::Date;
use serde::Serialize;
use uuid::Uuid;

use crate::FieldError;

/// The longest written reason, basis or statement, in characters.
pub const MAX_STATEMENT: usize = 10_000;

/// The two requests a patient can make about their record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Inspect or obtain a copy (164.524).
    Access,
    /// Amend (164.526).
    Amendment,
}

impl RequestKind {
    /// Days to act (KAP-SPEC 10: access "within 30 days", amendment "within 60 days").
    pub const fn days(self) -> i64 {
        match self {
            RequestKind::Access => 30,
            RequestKind::Amendment => 60,
        }
    }

    /// One extension of up to 30 days, for both (KAP-SPEC 10).
    pub const EXTENSION_DAYS: i64 = 30;
}

/// Why a step on a request is refused. [`Refusal::code`] is the stable code an API returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request has already been extended once; only one extension is allowed")]
    AlreadyExtended,
    #[error("the deadline {0} has passed; an extension is given before it")]
    DeadlinePassed(Date),
    #[error("the request has already been answered")]
    Closed,
    #[error("{0}")]
    State(&'static str),
    #[error("a date before the request was received")]
    BeforeReceipt,
    #[error(transparent)]
    Invalid(#[from] FieldError),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) | Refusal::BeforeReceipt => "invalid",
            _ => "state",
        }
    }
}

fn add_days(d: Date, days: i64) -> Date {
    // Dates in a clinic's records are far from jiff's limits (years -9999..=9999); saturate anyway.
    d.checked_add(days.days()).unwrap_or(Date::MAX)
}

fn statement(field: &'static str, raw: &str) -> Result<String, FieldError> {
    crate::text::plain(field, raw, MAX_STATEMENT, true)
}

/// An extension: when it was given, the written reasons, and the new deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Extension {
    pub given_on: Date,
    pub reason: String,
    pub until: Date,
}

/// Where a request stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    Open {
        due: Date,
        extended: bool,
    },
    /// Not answered and past its deadline.
    Overdue {
        due: Date,
    },
    Answered {
        on: Date,
        late: bool,
    },
}

/// The deadline of a request: received, perhaps extended, perhaps answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Deadline {
    pub kind: RequestKind,
    pub received_on: Date,
    pub extension: Option<Extension>,
    pub answered_on: Option<Date>,
}

impl Deadline {
    pub fn new(kind: RequestKind, received_on: Date) -> Self {
        Self { kind, received_on, extension: None, answered_on: None }
    }

    /// The first deadline (TV-HIP-1: access received 2025-04-01 → 2025-05-01; TV-HIP-2: amendment
    /// → 2025-05-31).
    pub fn first_due(&self) -> Date {
        add_days(self.received_on, self.kind.days())
    }

    /// The deadline in force.
    pub fn due(&self) -> Date {
        self.extension.as_ref().map_or_else(|| self.first_due(), |e| e.until)
    }

    /// Extends the deadline once, by 30 days, with the written reasons, on or before the first
    /// deadline (TV-HIP-1: → 2025-05-31; TV-HIP-2: → 2025-06-30).
    pub fn extend(&mut self, on: Date, reason: &str) -> Result<Date, Refusal> {
        if self.answered_on.is_some() {
            return Err(Refusal::Closed);
        }
        if self.extension.is_some() {
            return Err(Refusal::AlreadyExtended);
        }
        if on < self.received_on {
            return Err(Refusal::BeforeReceipt);
        }
        if on > self.first_due() {
            return Err(Refusal::DeadlinePassed(self.first_due()));
        }
        let reason = statement("reason", reason)?;
        let until = add_days(self.first_due(), RequestKind::EXTENSION_DAYS);
        self.extension = Some(Extension { given_on: on, reason, until });
        Ok(until)
    }

    fn answer(&mut self, on: Date) -> Result<(), Refusal> {
        if self.answered_on.is_some() {
            return Err(Refusal::Closed);
        }
        if on < self.received_on {
            return Err(Refusal::BeforeReceipt);
        }
        self.answered_on = Some(on);
        Ok(())
    }

    /// The status on `today`: due on the deadline itself, overdue the day after.
    pub fn status(&self, today: Date) -> Status {
        let due = self.due();
        match self.answered_on {
            Some(on) => Status::Answered { on, late: on > due },
            None if today > due => Status::Overdue { due },
            None => Status::Open { due, extended: self.extension.is_some() },
        }
    }
}

/// How an access request was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum AccessOutcome {
    /// The record set was provided (a readable document and JSON).
    Provided { on: Date },
    /// Denied, with the written basis.
    Denied { on: Date, basis: String },
}

/// A request to inspect or obtain a copy of the designated record set (164.524).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AccessRequest {
    pub deadline: Deadline,
    pub outcome: Option<AccessOutcome>,
}

impl AccessRequest {
    pub fn received(on: Date) -> Self {
        Self { deadline: Deadline::new(RequestKind::Access, on), outcome: None }
    }

    pub fn provide(&mut self, on: Date) -> Result<(), Refusal> {
        self.deadline.answer(on)?;
        self.outcome = Some(AccessOutcome::Provided { on });
        Ok(())
    }

    pub fn deny(&mut self, on: Date, basis: &str) -> Result<(), Refusal> {
        let basis = statement("basis", basis)?;
        self.deadline.answer(on)?;
        self.outcome = Some(AccessOutcome::Denied { on, basis });
        Ok(())
    }
}

/// How an amendment request was decided (164.526, KAP-SPEC 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum AmendmentDecision {
    /// Accepted: the records affected, to which the amendment is appended or linked (never
    /// overwritten).
    Accepted { on: Date, records: Vec<Uuid> },
    /// Denied in writing with its basis; the patient may file a statement of disagreement.
    Denied { on: Date, basis: String },
}

/// A dated statement: the patient's disagreement, or the clinic's rebuttal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Statement {
    pub on: Date,
    pub text: String,
}

/// A patient's request to amend their record, with everything linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AmendmentRequest {
    pub deadline: Deadline,
    /// What the patient asks to change, and why, in their words.
    pub requested: String,
    pub decision: Option<AmendmentDecision>,
    pub disagreement: Option<Statement>,
    pub rebuttal: Option<Statement>,
}

impl AmendmentRequest {
    pub fn received(on: Date, requested: &str) -> Result<Self, Refusal> {
        Ok(Self {
            deadline: Deadline::new(RequestKind::Amendment, on),
            requested: statement("requested", requested)?,
            decision: None,
            disagreement: None,
            rebuttal: None,
        })
    }

    /// Accepts: the affected records are named (KAP-SPEC 10: "identify affected records and
    /// append or link the amendment").
    pub fn accept(&mut self, on: Date, records: Vec<Uuid>) -> Result<(), Refusal> {
        if records.is_empty() {
            return Err(FieldError::new("records", "name the records the amendment is appended to").into());
        }
        self.deadline.answer(on)?;
        self.decision = Some(AmendmentDecision::Accepted { on, records });
        Ok(())
    }

    /// Denies in writing with the basis.
    pub fn deny(&mut self, on: Date, basis: &str) -> Result<(), Refusal> {
        let basis = statement("basis", basis)?;
        self.deadline.answer(on)?;
        self.decision = Some(AmendmentDecision::Denied { on, basis });
        Ok(())
    }

    /// The patient's statement of disagreement with a denial (once).
    pub fn disagree(&mut self, on: Date, text: &str) -> Result<(), Refusal> {
        if !matches!(self.decision, Some(AmendmentDecision::Denied { .. })) {
            return Err(Refusal::State("a statement of disagreement answers a denial"));
        }
        if self.disagreement.is_some() {
            return Err(Refusal::State("the statement of disagreement is already on file"));
        }
        self.disagreement = Some(Statement { on, text: statement("text", text)? });
        Ok(())
    }

    /// The clinic's rebuttal of the statement of disagreement (once).
    pub fn rebut(&mut self, on: Date, text: &str) -> Result<(), Refusal> {
        if self.disagreement.is_none() {
            return Err(Refusal::State("a rebuttal answers a statement of disagreement"));
        }
        if self.rebuttal.is_some() {
            return Err(Refusal::State("the rebuttal is already on file"));
        }
        self.rebuttal = Some(Statement { on, text: statement("text", text)? });
        Ok(())
    }

    /// Whether later disclosures of the records concerned must carry this request with its
    /// denial, disagreement and rebuttal (KAP-SPEC 10: "link request, denial, disagreement and
    /// rebuttal to the record and include them with future disclosures").
    pub fn travels_with_disclosures(&self) -> bool {
        matches!(self.decision, Some(AmendmentDecision::Denied { .. }))
    }
}

/// A kind of record, for deciding what a record-set export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RecordItem {
    /// The therapist's separate notes of the conversation (45 CFR 164.501).
    PsychotherapyNote,
    IntegrationNote {
        signed: bool,
    },
    /// A progress note written during a dosing session.
    SessionProgressNote,
    /// Check-in, dose order, administration, devices, discharge.
    DosingRecord,
    VitalSigns,
    QuestionnaireScore,
    AdverseEvent,
    Consultation,
    EligibilityDecision,
    Consent,
    TreatmentCourse,
    Appointment,
    RemsForm,
    JournalEntry {
        shared: bool,
    },
    /// An amendment request with its decision, disagreement and rebuttal.
    AmendmentRecord,
    /// Who opened the record: shown to the patient as "who viewed my record", not a record of care.
    AccessLog,
}

/// Why an item is left out of the designated record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// KAP-SPEC 10 "Right of access … except psychotherapy notes" [S62]; kept apart [S60].
    PsychotherapyNotes,
    /// Not yet signed: not yet part of the record (the issue: "Unsigned drafts are not part of
    /// exports").
    UnsignedDraft,
    /// The patient's private journal entry: never read by the clinic, so not a record the clinic
    /// uses to make decisions about them; the patient has it in the portal.
    PrivateJournal,
    /// The audit trail of who opened the record is reported separately.
    AccessLog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "membership", content = "reason")]
pub enum Membership {
    Included,
    Excluded(Exclusion),
}

/// Is `item` part of the designated record set (TV-HIP-3)? Everything but psychotherapy notes,
/// unsigned drafts, private journal entries and the access log. Progress-note content — dosing
/// records, vitals, instrument scores, adverse events, integration summaries — is in (KAP-SPEC
/// 10 "Progress notes" [S60]), and so are amendment records, which go with the record (164.526).
pub fn classify(item: RecordItem) -> Membership {
    use RecordItem::*;
    match item {
        PsychotherapyNote => Membership::Excluded(Exclusion::PsychotherapyNotes),
        IntegrationNote { signed: false } => Membership::Excluded(Exclusion::UnsignedDraft),
        JournalEntry { shared: false } => Membership::Excluded(Exclusion::PrivateJournal),
        AccessLog => Membership::Excluded(Exclusion::AccessLog),
        IntegrationNote { signed: true }
        | SessionProgressNote
        | DosingRecord
        | VitalSigns
        | QuestionnaireScore
        | AdverseEvent
        | Consultation
        | EligibilityDecision
        | Consent
        | TreatmentCourse
        | Appointment
        | RemsForm
        | JournalEntry { shared: true }
        | AmendmentRecord => Membership::Included,
    }
}

/// The items of an export: those [`classify`] includes, in the order given.
pub fn record_set<T>(items: impl IntoIterator<Item = (RecordItem, T)>) -> Vec<T> {
    items.into_iter().filter(|(kind, _)| classify(*kind) == Membership::Included).map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn tv_hip_1_access_within_30_days_and_one_extension_to_60() {
        let mut r = AccessRequest::received(date(2025, 4, 1));
        assert_eq!(r.deadline.first_due(), date(2025, 5, 1));
        assert_eq!(r.deadline.status(date(2025, 5, 1)), Status::Open { due: date(2025, 5, 1), extended: false });
        assert_eq!(r.deadline.status(date(2025, 5, 2)), Status::Overdue { due: date(2025, 5, 1) });
        assert_eq!(r.deadline.extend(date(2025, 4, 28), "Records are in off-site storage"), Ok(date(2025, 5, 31)));
        assert_eq!(r.deadline.status(date(2025, 5, 2)), Status::Open { due: date(2025, 5, 31), extended: true });
        assert_eq!(r.deadline.extend(date(2025, 4, 29), "again"), Err(Refusal::AlreadyExtended), "only one");
        r.provide(date(2025, 5, 20)).unwrap();
        assert_eq!(r.deadline.status(date(2025, 6, 9)), Status::Answered { on: date(2025, 5, 20), late: false });
        assert_eq!(r.provide(date(2025, 5, 21)), Err(Refusal::Closed));
    }

    #[test]
    fn an_extension_is_written_and_given_before_the_deadline() {
        let mut r = AccessRequest::received(date(2025, 4, 1));
        let e = r.deadline.extend(date(2025, 4, 10), "  ").unwrap_err();
        assert!(matches!(e, Refusal::Invalid(FieldError { field: "reason", .. })), "written reasons");
        assert_eq!(r.deadline.extend(date(2025, 5, 2), "late"), Err(Refusal::DeadlinePassed(date(2025, 5, 1))));
        assert_eq!(r.deadline.extend(date(2025, 3, 31), "early"), Err(Refusal::BeforeReceipt));
        assert_eq!(r.deadline.extension, None, "refusals change nothing");
        assert_eq!(r.deadline.extend(date(2025, 5, 1), "on the last day"), Ok(date(2025, 5, 31)));
        let mut late = AccessRequest::received(date(2025, 4, 1));
        late.deny(date(2025, 5, 5), "Compiled for a legal proceeding").unwrap();
        assert_eq!(late.deadline.status(date(2025, 5, 5)), Status::Answered { on: date(2025, 5, 5), late: true });
        assert!(matches!(late.outcome, Some(AccessOutcome::Denied { .. })));
        assert_eq!(late.deadline.extend(date(2025, 5, 6), "x"), Err(Refusal::Closed));
    }

    #[test]
    fn tv_hip_2_amendment_within_60_days_and_one_extension_to_90() {
        let mut r = AmendmentRequest::received(date(2025, 4, 1), "My PHQ-9 of March 3 was entered twice").unwrap();
        assert_eq!(r.deadline.first_due(), date(2025, 5, 31));
        assert_eq!(r.deadline.extend(date(2025, 5, 30), "Awaiting the author's review"), Ok(date(2025, 6, 30)));
        assert_eq!(r.deadline.status(date(2025, 6, 30)), Status::Open { due: date(2025, 6, 30), extended: true });
        assert_eq!(r.deadline.status(date(2025, 7, 1)), Status::Overdue { due: date(2025, 6, 30) });
    }

    #[test]
    fn an_accepted_amendment_names_the_records_it_is_linked_to() {
        let mut r = AmendmentRequest::received(date(2025, 4, 1), "Wrong date of my first session").unwrap();
        let e = r.accept(date(2025, 4, 20), vec![]).unwrap_err();
        assert!(matches!(e, Refusal::Invalid(FieldError { field: "records", .. })));
        assert_eq!(r.decision, None);
        let note = Uuid::from_u128(5);
        r.accept(date(2025, 4, 20), vec![note]).unwrap();
        assert_eq!(r.decision, Some(AmendmentDecision::Accepted { on: date(2025, 4, 20), records: vec![note] }));
        assert!(!r.travels_with_disclosures());
        assert!(r.disagree(date(2025, 4, 21), "x").is_err(), "nothing to disagree with");
        assert_eq!(r.deny(date(2025, 4, 21), "changed my mind"), Err(Refusal::Closed));
    }

    #[test]
    fn a_denial_has_its_basis_then_the_disagreement_and_rebuttal_are_linked() {
        let mut r = AmendmentRequest::received(date(2025, 4, 1), "Remove the adverse event of April 2").unwrap();
        assert!(r.deny(date(2025, 4, 15), " ").is_err(), "a written basis");
        assert!(r.rebut(date(2025, 4, 15), "x").is_err(), "nothing to rebut");
        r.deny(date(2025, 4, 15), "The record is accurate and complete: nausea was observed and treated").unwrap();
        r.disagree(date(2025, 4, 20), "I was not nauseous; I was tired.").unwrap();
        assert!(r.disagree(date(2025, 4, 21), "again").is_err(), "once");
        r.rebut(date(2025, 4, 25), "The nurse's note records vomiting at 10:40.").unwrap();
        assert!(r.rebut(date(2025, 4, 26), "again").is_err());
        assert!(r.travels_with_disclosures());
        assert_eq!(r.disagreement.as_ref().map(|s| s.on), Some(date(2025, 4, 20)));
        assert!(AmendmentRequest::received(date(2025, 4, 1), "").is_err(), "say what to change");
    }

    #[test]
    fn tv_hip_3_psychotherapy_notes_are_left_out_of_the_access_bundle() {
        let items = [
            (RecordItem::PsychotherapyNote, "psychotherapy note"),
            (RecordItem::SessionProgressNote, "progress note"),
            (RecordItem::IntegrationNote { signed: true }, "signed integration note"),
            (RecordItem::IntegrationNote { signed: false }, "draft integration note"),
            (RecordItem::DosingRecord, "dosing record"),
            (RecordItem::VitalSigns, "vitals"),
            (RecordItem::QuestionnaireScore, "scores"),
            (RecordItem::JournalEntry { shared: false }, "private journal"),
            (RecordItem::JournalEntry { shared: true }, "shared journal"),
            (RecordItem::AmendmentRecord, "amendment"),
        ];
        assert_eq!(
            record_set(items),
            [
                "progress note",
                "signed integration note",
                "dosing record",
                "vitals",
                "scores",
                "shared journal",
                "amendment"
            ]
        );
        assert_eq!(classify(RecordItem::PsychotherapyNote), Membership::Excluded(Exclusion::PsychotherapyNotes));
        assert_eq!(
            classify(RecordItem::IntegrationNote { signed: false }),
            Membership::Excluded(Exclusion::UnsignedDraft)
        );
        let json = serde_json::to_value(classify(RecordItem::PsychotherapyNote)).unwrap();
        assert_eq!(
            (json["membership"].as_str(), json["reason"].as_str()),
            (Some("excluded"), Some("psychotherapy_notes"))
        );
    }
}
