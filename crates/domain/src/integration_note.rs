//! Integration notes: what the therapist records of an integration session that follows a dosing
//! session (KAP-SPEC 2.1 stage 7, "Integration/processing session(s) with therapist"; exit gate
//! "Integration note signed").
//!
//! An integration note is **progress-note** content (KAP-SPEC 10: "integration summaries are
//! progress-note content, not psychotherapy notes" [S60]): part of the designated record set,
//! read by the care team for treatment and by the patient under the right of access. What the
//! therapist keeps of the conversation itself belongs in a psychotherapy note, a separate record
//! that this module does not touch.
//!
//! Life of a note:
//! ```text
//! draft (its author edits it) --sign--> signed (immutable) --amend--> signed + amendments
//! ```
//! Signed-note integrity (KAP-SPEC 10, TV-HIP-4): a signed note is never edited in place; a
//! correction is an [`Amendment`] that references the original, with its author, time and reason,
//! and the original stays retrievable [S63].
//!
//! Who does what, and why:
//! - **Write and sign**: therapists (2.1 stage 7: integration is "with therapist"). A draft is its
//!   author's until signed: only the author edits or signs it, so a signature always vouches for
//!   the signer's own words.
//! - **Amend**: any therapist, named on the amendment. The original author may have left the
//!   clinic, and an amendment the clinic accepts on the patient's request (45 CFR 164.526, see
//!   `records_access`) must still be appended [S63].
//! - **Read a draft**: its author only; a draft is not yet part of the record (and is left out of
//!   exports, TV-HIP-3 in `records_access`).
//! - **Read a signed note**: the clinicians who read the clinical record (prescribers, nurses,
//!   therapists: the permission table's `ReadClinicalRecord`, the treatment use of a progress
//!   note), and the patient it is about (right of access, 164.524 [S62]). Not front desk or
//!   admins: they have no treatment role that needs it.

use serde::Serialize;
use uuid::Uuid;

use crate::permissions::{Action, allows};
use crate::{FieldError, Role, UserId, UtcTs};

/// The longest summary, in characters.
pub const MAX_SUMMARY: usize = 20_000;
/// The longest plan, in characters.
pub const MAX_PLAN: usize = 4_000;
/// The longest reason for an amendment, in characters.
pub const MAX_REASON: usize = 1_000;

/// What the note says: the integration summary (what emerged, how the patient is integrating it,
/// symptoms and progress to date) and the plan (next steps, the next dosing or integration
/// session). Both are progress-note content (KAP-SPEC 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NoteBody {
    pub summary: String,
    pub plan: Option<String>,
}

impl NoteBody {
    /// Parses what the therapist typed: the summary is required, the plan may be empty.
    pub fn parse(summary: &str, plan: &str) -> Result<Self, FieldError> {
        Ok(Self {
            summary: crate::text::plain("summary", summary, MAX_SUMMARY, true)?,
            plan: crate::text::optional("plan", plan, MAX_PLAN, true)?,
        })
    }
}

/// A correction of a signed note. The note it amends is kept as it was signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Amendment {
    pub author: UserId,
    pub at: UtcTs,
    /// The note as corrected.
    pub body: NoteBody,
    pub reason: String,
    /// The patient's amendment request this answers, when it does (45 CFR 164.526: the accepted
    /// amendment is linked to the request).
    pub request: Option<Uuid>,
}

/// Why an action on a note is refused. [`Refusal::code`] is the stable code an API returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only a therapist writes integration notes")]
    Role,
    #[error("only the author of a draft edits or signs it")]
    NotTheAuthor,
    /// TV-HIP-4: "Reject in-place edit; create amendment linked to original".
    #[error("a signed note is not edited: add an amendment with the reason instead")]
    Signed,
    #[error("a draft is edited, not amended: sign it first")]
    NotSigned,
    #[error("the text is the same as the text in force")]
    Unchanged,
    #[error(transparent)]
    Invalid(#[from] FieldError),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Role | Refusal::NotTheAuthor => "role",
            Refusal::Signed => "signed_note_immutable",
            Refusal::NotSigned | Refusal::Unchanged => "state",
            Refusal::Invalid(_) => "invalid",
        }
    }
}

/// May someone in `role` write, sign and amend integration notes?
pub fn may_write(role: Role) -> bool {
    role == Role::Therapist
}

/// Who is asking to read a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Staff {
        user: UserId,
        role: Role,
    },
    /// A patient account; `own` when the note is about this patient.
    Patient {
        own: bool,
    },
}

/// An integration note, linked to the dosing session it follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IntegrationNote {
    pub dosing_session: Uuid,
    pub author: UserId,
    pub created_at: UtcTs,
    pub updated_at: UtcTs,
    /// As drafted, then as signed: never changed after signing.
    pub body: NoteBody,
    pub signed_at: Option<UtcTs>,
    /// Oldest first.
    pub amendments: Vec<Amendment>,
}

impl IntegrationNote {
    /// A new draft by `author`.
    pub fn draft(author: UserId, role: Role, dosing_session: Uuid, at: UtcTs, body: NoteBody) -> Result<Self, Refusal> {
        if !may_write(role) {
            return Err(Refusal::Role);
        }
        Ok(Self {
            dosing_session,
            author,
            created_at: at,
            updated_at: at,
            body,
            signed_at: None,
            amendments: Vec::new(),
        })
    }

    pub fn is_signed(&self) -> bool {
        self.signed_at.is_some()
    }

    /// The text in force: the latest amendment's, or the note's own.
    pub fn current(&self) -> &NoteBody {
        self.amendments.last().map_or(&self.body, |a| &a.body)
    }

    fn check_author(&self, by: UserId, role: Role) -> Result<(), Refusal> {
        if !may_write(role) {
            return Err(Refusal::Role);
        }
        if by != self.author {
            return Err(Refusal::NotTheAuthor);
        }
        Ok(())
    }

    /// Replaces the draft's text (its author only). A signed note is refused (TV-HIP-4).
    pub fn edit(&mut self, by: UserId, role: Role, at: UtcTs, body: NoteBody) -> Result<(), Refusal> {
        if self.is_signed() {
            return Err(Refusal::Signed);
        }
        self.check_author(by, role)?;
        self.body = body;
        self.updated_at = at;
        Ok(())
    }

    /// Signs the draft (its author only); from now on it is immutable.
    pub fn sign(&mut self, by: UserId, role: Role, at: UtcTs) -> Result<(), Refusal> {
        if self.is_signed() {
            return Err(Refusal::Signed);
        }
        self.check_author(by, role)?;
        self.signed_at = Some(at);
        self.updated_at = at;
        Ok(())
    }

    /// Appends an amendment to a signed note (any therapist, named on it, with the reason). The
    /// original and earlier amendments are untouched.
    pub fn amend(
        &mut self,
        by: UserId,
        role: Role,
        at: UtcTs,
        body: NoteBody,
        reason: &str,
        request: Option<Uuid>,
    ) -> Result<&Amendment, Refusal> {
        if !may_write(role) {
            return Err(Refusal::Role);
        }
        if !self.is_signed() {
            return Err(Refusal::NotSigned);
        }
        let reason = crate::text::plain("reason", reason, MAX_REASON, false)?;
        if body == *self.current() {
            return Err(Refusal::Unchanged);
        }
        self.amendments.push(Amendment { author: by, at, body, reason, request });
        self.updated_at = at;
        Ok(&self.amendments[self.amendments.len() - 1])
    }

    /// May `reader` read this note? See the module's notes.
    pub fn may_read(&self, reader: Reader) -> bool {
        match (self.is_signed(), reader) {
            (false, Reader::Staff { user, role }) => user == self.author && may_write(role),
            (false, Reader::Patient { .. }) => false,
            (true, Reader::Staff { role, .. }) => allows(Some(role), Action::ReadClinicalRecord),
            (true, Reader::Patient { own }) => own,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(minutes: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_790_000_000_000_000 + minutes * 60_000_000)
    }

    fn body(summary: &str) -> NoteBody {
        NoteBody::parse(summary, "").unwrap()
    }

    fn signed_note(author: UserId) -> IntegrationNote {
        let mut n =
            IntegrationNote::draft(author, Role::Therapist, Uuid::from_u128(7), ts(0), body("Felt held.")).unwrap();
        n.sign(author, Role::Therapist, ts(30)).unwrap();
        n
    }

    #[test]
    fn the_text_is_typed_with_limits() {
        let b = NoteBody::parse("  Spoke of grief.\r\nCalmer.  ", "  Next dosing in a week ").unwrap();
        assert_eq!(
            (b.summary.as_str(), b.plan.as_deref()),
            ("Spoke of grief.\nCalmer.", Some("Next dosing in a week"))
        );
        assert_eq!(NoteBody::parse(" ", "plan").unwrap_err().field, "summary");
        assert_eq!(NoteBody::parse("ok", "").unwrap().plan, None);
        assert_eq!(NoteBody::parse("ok", &"p".repeat(MAX_PLAN + 1)).unwrap_err().field, "plan");
        assert!(NoteBody::parse(&"s".repeat(MAX_SUMMARY), "").is_ok());
        assert_eq!(NoteBody::parse(&"s".repeat(MAX_SUMMARY + 1), "").unwrap_err().field, "summary");
        assert_eq!(NoteBody::parse("a\u{0}b", "").unwrap_err().field, "summary");
    }

    #[test]
    fn only_therapists_write_and_only_the_author_edits_and_signs_a_draft() {
        let author = UserId::new();
        for role in Role::ALL {
            let r = IntegrationNote::draft(author, role, Uuid::nil(), ts(0), body("x"));
            assert_eq!(r.is_ok(), role == Role::Therapist, "{role:?}");
        }
        let mut n = IntegrationNote::draft(author, Role::Therapist, Uuid::nil(), ts(0), body("First go.")).unwrap();
        n.edit(author, Role::Therapist, ts(5), body("Second go.")).unwrap();
        assert_eq!((n.body.summary.as_str(), n.updated_at), ("Second go.", ts(5)));
        let colleague = UserId::new();
        assert_eq!(n.edit(colleague, Role::Therapist, ts(6), body("Mine")), Err(Refusal::NotTheAuthor));
        assert_eq!(n.sign(colleague, Role::Therapist, ts(6)), Err(Refusal::NotTheAuthor));
        assert_eq!(n.sign(author, Role::Nurse, ts(6)), Err(Refusal::Role), "a role change takes the pen away");
        assert_eq!(n.body.summary, "Second go.", "refusals change nothing");
        n.sign(author, Role::Therapist, ts(10)).unwrap();
        assert_eq!(n.signed_at, Some(ts(10)));
        assert_eq!(n.sign(author, Role::Therapist, ts(11)), Err(Refusal::Signed));
    }

    #[test]
    fn tv_hip_4_a_signed_note_is_amended_not_edited() {
        let author = UserId::new();
        let mut n = signed_note(author);
        let before = n.clone();
        let e = n.edit(author, Role::Therapist, ts(40), body("Felt unheld.")).unwrap_err();
        assert_eq!((e.code(), &n), ("signed_note_immutable", &before), "in-place edit rejected");
        let other = UserId::new();
        let request = Uuid::from_u128(99);
        let a = n
            .amend(other, Role::Therapist, ts(60), body("Felt held; cried once."), " Omitted detail ", Some(request))
            .unwrap()
            .clone();
        assert_eq!((a.author, a.at, a.reason.as_str(), a.request), (other, ts(60), "Omitted detail", Some(request)));
        assert_eq!(n.body.summary, "Felt held.", "the original is preserved");
        assert_eq!(n.signed_at, Some(ts(30)));
        assert_eq!(n.current().summary, "Felt held; cried once.");
        n.amend(author, Role::Therapist, ts(90), body("Third."), "Typo", None).unwrap();
        assert_eq!(n.amendments.len(), 2);
        assert_eq!(n.amendments[0].body.summary, "Felt held; cried once.", "earlier amendments stay");
    }

    #[test]
    fn an_amendment_needs_a_signed_note_a_reason_a_change_and_a_therapist() {
        let author = UserId::new();
        let mut draft = IntegrationNote::draft(author, Role::Therapist, Uuid::nil(), ts(0), body("x")).unwrap();
        assert_eq!(draft.amend(author, Role::Therapist, ts(1), body("y"), "r", None).unwrap_err(), Refusal::NotSigned);
        let mut n = signed_note(author);
        let e = n.amend(author, Role::Therapist, ts(40), body("New"), "  ", None).unwrap_err();
        assert!(matches!(e, Refusal::Invalid(FieldError { field: "reason", .. })));
        assert_eq!(n.amend(author, Role::Therapist, ts(40), body("Felt held."), "r", None), Err(Refusal::Unchanged));
        assert_eq!(n.amend(author, Role::Prescriber, ts(40), body("New"), "r", None), Err(Refusal::Role));
        assert!(n.amendments.is_empty());
    }

    #[test]
    fn who_reads_a_draft_and_a_signed_note() {
        let author = UserId::new();
        let colleague = UserId::new();
        let draft = IntegrationNote::draft(author, Role::Therapist, Uuid::nil(), ts(0), body("x")).unwrap();
        assert!(draft.may_read(Reader::Staff { user: author, role: Role::Therapist }));
        for role in Role::ALL {
            assert!(!draft.may_read(Reader::Staff { user: colleague, role }), "{role:?} reads no one else's draft");
        }
        assert!(!draft.may_read(Reader::Patient { own: true }), "a draft is not yet in the record");
        let signed = signed_note(author);
        for role in Role::ALL {
            let expected = matches!(role, Role::Prescriber | Role::Nurse | Role::Therapist);
            assert_eq!(signed.may_read(Reader::Staff { user: colleague, role }), expected, "{role:?}");
        }
        assert!(signed.may_read(Reader::Patient { own: true }), "right of access (164.524)");
        assert!(!signed.may_read(Reader::Patient { own: false }), "never another patient's");
    }
}
