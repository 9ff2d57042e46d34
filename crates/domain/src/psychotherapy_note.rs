//! Psychotherapy notes (KAP-SPEC 10, 45 CFR 164.501): what a therapist writes about the content of
//! the conversation in a session, kept apart from the medical record and readable by its author
//! only.
//!
//! Everything clinical about a dosing session (how it went, vitals, the dose, adverse events, the
//! integration summary) is progress-note content and stays in the session's record
//! ([`crate::session::SessionEvent::ProgressNote`]). A psychotherapy note is the therapist's own
//! working note: the patient has no right of access to it (164.524), other providers may not read
//! it without the patient's separate authorization (164.508(a)(2)), and it is left out of every
//! default record view, export and release bundle (TV-HIP-3).
//!
//! Integrity (KAP-SPEC 10 "Signed-note integrity", TV-HIP-4): a note is signed when it is saved
//! and never changes afterwards; a correction is an [`Amendment`] that keeps the original, with
//! its author, time and reason.
//!
//! Why signed on save rather than drafts editable until signed: nobody but the author can ever
//! see these notes, so an unsigned draft would be an invisible record that nobody else could
//! notice was left unsigned, and whose text could change without trace after it had been used in
//! care. Signing on save means every stored text is final and every change is visible as an
//! amendment; it also leaves no "draft" state for the store to get wrong.

use crate::identity::Role;
use crate::permissions::{Action, allows};
use crate::{FieldError, UserId, UtcTs};

/// The longest note, in characters (the same room as a session's progress note).
pub const MAX_TEXT: usize = 20_000;
/// The longest reason for an amendment, in characters.
pub const MAX_REASON: usize = 1_000;

/// Plain text that parses: trimmed, not empty, at most `max` characters, and no control characters
/// other than line breaks. A browser sends a textarea's line breaks as CR LF; they are kept as LF
/// so the stored text is the same whichever client wrote it.
fn plain_text(field: &'static str, raw: &str, max: usize, multiline: bool) -> Result<String, FieldError> {
    let text = raw.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "write something here"));
    }
    if text.chars().count() > max {
        return Err(FieldError::new(field, format!("use at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && !(multiline && c == '\n')) {
        let allowed = if multiline { " other than line breaks" } else { "" };
        return Err(FieldError::new(field, format!("use plain text (no control characters{allowed})")));
    }
    Ok(text.to_owned())
}

/// The text of a psychotherapy note or of an amendment to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteText(String);

impl NoteText {
    /// Parses what the author typed; `field` names the input in an error.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        plain_text(field, raw, MAX_TEXT, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Why a signed note is amended (KAP-SPEC 10: every correction carries its reason). One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmendmentReason(String);

impl AmendmentReason {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        plain_text(field, raw, MAX_REASON, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// May an account in `role` write psychotherapy notes? Therapists and prescribers (the
/// permission table's [`Action::KeepPsychotherapyNotes`]).
pub fn may_write(role: Role) -> bool {
    allows(Some(role), Action::KeepPsychotherapyNotes)
}

/// May `reader` (acting in `role`) read a note written by `author`? Only the author, and only
/// while their role still keeps psychotherapy notes. Not other clinicians, not admins, not the
/// patient: disclosure to anyone else needs the patient's separate authorization (164.508(a)(2)),
/// which Kapstone does not record, so it never discloses.
pub fn may_read(reader: UserId, role: Role, author: UserId) -> bool {
    reader == author && may_write(role)
}

/// May `reader` read a note by `author` that its author has shared with `shared_with` (issue 7:
/// "readable only by its author unless the author shares it with a named colleague")? The
/// author, as [`may_read`]; otherwise only the one named colleague, and only while their role
/// still keeps psychotherapy notes (a therapist or prescriber). Sharing is the author's act,
/// taken under the patient's authorization where 164.508(a)(2) needs one.
pub fn may_read_shared(reader: UserId, role: Role, author: UserId, shared_with: Option<UserId>) -> bool {
    may_read(reader, role, author) || (shared_with == Some(reader) && reader != author && may_write(role))
}

/// Why a share is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareRefusal {
    /// Only the author shares their note.
    NotTheAuthor,
    /// The colleague is the author themself.
    Self_,
    /// The colleague does not keep psychotherapy notes (not a therapist or prescriber), or the
    /// account is inactive.
    NotAColleague,
}

/// May `author` (in `role`) share a note they wrote with `colleague` (in `colleague_role`,
/// `active`)? One named therapist or prescriber of the clinic, not the author.
pub fn may_share(
    actor: UserId,
    role: Role,
    author: UserId,
    colleague: UserId,
    colleague_role: Role,
    active: bool,
) -> Result<(), ShareRefusal> {
    if !may_read(actor, role, author) {
        return Err(ShareRefusal::NotTheAuthor);
    }
    if colleague == author {
        return Err(ShareRefusal::Self_);
    }
    if !active || !may_write(colleague_role) {
        return Err(ShareRefusal::NotAColleague);
    }
    Ok(())
}

/// A signed amendment: the corrected text, why, by whom and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    pub author: UserId,
    pub signed_at: UtcTs,
    pub text: NoteText,
    pub reason: AmendmentReason,
}

/// A signed psychotherapy note with its amendments, oldest first. The original text is never
/// replaced: each amendment is kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub author: UserId,
    pub signed_at: UtcTs,
    pub text: NoteText,
    pub amendments: Vec<Amendment>,
}

/// Why an amendment is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmendRefusal {
    /// Someone other than the author (or an author whose role no longer keeps notes). The shell
    /// answers "not found": the note's existence is not disclosed either.
    NotTheAuthor,
    /// The corrected text is the text already in force: nothing to amend.
    Unchanged,
}

impl Note {
    /// A note written and signed by `author` at `at`.
    pub fn sign(author: UserId, at: UtcTs, text: NoteText) -> Self {
        Self { author, signed_at: at, text, amendments: Vec::new() }
    }

    /// The text in force: the latest amendment's, or the original's.
    pub fn current_text(&self) -> &NoteText {
        self.amendments.last().map_or(&self.text, |a| &a.text)
    }

    /// Decides an amendment by `by` acting in `role`: only the author amends, and only with a
    /// text that differs from the one in force. The amendment is added after the others; the
    /// original and earlier amendments are untouched.
    pub fn amend(
        &mut self,
        by: UserId,
        role: Role,
        at: UtcTs,
        text: NoteText,
        reason: AmendmentReason,
    ) -> Result<Amendment, AmendRefusal> {
        if !may_read(by, role, self.author) {
            return Err(AmendRefusal::NotTheAuthor);
        }
        if text == *self.current_text() {
            return Err(AmendRefusal::Unchanged);
        }
        let amendment = Amendment { author: by, signed_at: at, text, reason };
        self.amendments.push(amendment.clone());
        Ok(amendment)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(s: &str) -> NoteText {
        NoteText::parse("text", s).unwrap()
    }

    fn reason(s: &str) -> AmendmentReason {
        AmendmentReason::parse("reason", s).unwrap()
    }

    fn ts(micros: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_790_000_000_000_000 + micros)
    }

    #[test]
    fn note_text_is_trimmed_plain_text_with_line_breaks() {
        assert_eq!(text("  Spoke of her father.\r\nLong silence.  ").as_str(), "Spoke of her father.\nLong silence.");
        assert_eq!(text("a\rb").as_str(), "a\nb", "a lone CR is a line break too");
        for bad in ["", "   ", "\r\n\n"] {
            let e = NoteText::parse("text", bad).unwrap_err();
            assert_eq!(e.field, "text");
        }
        let e = NoteText::parse("text", "tab\there").unwrap_err();
        assert_eq!((e.field, e.message.contains("control")), ("text", true));
        let e = NoteText::parse("text", "bell\u{7}").unwrap_err();
        assert_eq!(e.field, "text");
        assert!(NoteText::parse("text", &"x".repeat(MAX_TEXT)).is_ok());
        let e = NoteText::parse("text", &"x".repeat(MAX_TEXT + 1)).unwrap_err();
        assert!(e.message.contains("20000"), "{e}");
        // Characters, not bytes: a note in another script is not cut short.
        assert!(NoteText::parse("text", &"é".repeat(MAX_TEXT)).is_ok());
    }

    #[test]
    fn an_amendment_reason_is_one_line() {
        assert_eq!(reason(" Wrong date ").as_str(), "Wrong date");
        assert_eq!(AmendmentReason::parse("reason", "two\nlines").unwrap_err().field, "reason");
        assert_eq!(AmendmentReason::parse("reason", " ").unwrap_err().field, "reason");
        assert!(AmendmentReason::parse("reason", &"r".repeat(MAX_REASON + 1)).is_err());
    }

    #[test]
    fn only_therapists_and_prescribers_write() {
        for role in Role::ALL {
            assert_eq!(may_write(role), matches!(role, Role::Therapist | Role::Prescriber), "{role:?}");
        }
    }

    #[test]
    fn only_the_author_reads() {
        let author = UserId::new();
        let colleague = UserId::new();
        assert!(may_read(author, Role::Therapist, author));
        assert!(may_read(author, Role::Prescriber, author));
        for role in Role::ALL {
            assert!(!may_read(colleague, role, author), "another {role:?} never reads it");
        }
        // The author whose account became an admin or front desk account no longer reads it.
        for role in [Role::Admin, Role::Nurse, Role::Frontdesk, Role::Patient] {
            assert!(!may_read(author, role, author), "{role:?}");
        }
    }

    #[test]
    fn an_amendment_keeps_the_original_tv_hip_4() {
        let author = UserId::new();
        let mut note = Note::sign(author, ts(0), text("Discussed the dream of the river."));
        let a = note
            .amend(author, Role::Therapist, ts(60), text("Discussed the dream of the sea."), reason("Misheard"))
            .unwrap();
        assert_eq!((a.author, a.signed_at, a.reason.as_str()), (author, ts(60), "Misheard"));
        assert_eq!(note.text.as_str(), "Discussed the dream of the river.", "the original is kept");
        assert_eq!(note.current_text().as_str(), "Discussed the dream of the sea.");
        note.amend(author, Role::Therapist, ts(120), text("Third reading."), reason("Clarified")).unwrap();
        assert_eq!(note.amendments.len(), 2);
        assert_eq!(note.amendments[0].text.as_str(), "Discussed the dream of the sea.", "earlier amendments stay");
        assert_eq!(note.current_text().as_str(), "Third reading.");
    }

    #[test]
    fn only_the_author_amends_and_only_with_a_change() {
        let author = UserId::new();
        let mut note = Note::sign(author, ts(0), text("Original."));
        let before = note.clone();
        let other = UserId::new();
        assert_eq!(
            note.amend(other, Role::Therapist, ts(1), text("Rewritten."), reason("Mine now")).unwrap_err(),
            AmendRefusal::NotTheAuthor
        );
        assert_eq!(
            note.amend(author, Role::Admin, ts(1), text("Rewritten."), reason("Role changed")).unwrap_err(),
            AmendRefusal::NotTheAuthor
        );
        assert_eq!(
            note.amend(author, Role::Therapist, ts(1), text(" Original. "), reason("No change")).unwrap_err(),
            AmendRefusal::Unchanged
        );
        assert_eq!(note, before, "a refused amendment changes nothing");
    }

    #[test]
    fn a_shared_note_is_read_by_its_author_and_the_one_named_colleague_only() {
        let (author, colleague, other) = (
            UserId::from_uuid(uuid::Uuid::from_u128(1)),
            UserId::from_uuid(uuid::Uuid::from_u128(2)),
            UserId::from_uuid(uuid::Uuid::from_u128(3)),
        );
        assert!(may_read_shared(author, Role::Therapist, author, Some(colleague)));
        assert!(may_read_shared(colleague, Role::Prescriber, author, Some(colleague)));
        assert!(!may_read_shared(colleague, Role::Prescriber, author, None), "withdrawn");
        assert!(!may_read_shared(other, Role::Therapist, author, Some(colleague)));
        for role in [Role::Admin, Role::Nurse, Role::Frontdesk, Role::Patient] {
            assert!(!may_read_shared(colleague, role, author, Some(colleague)), "{role:?}");
        }
        assert_eq!(may_share(author, Role::Therapist, author, colleague, Role::Prescriber, true), Ok(()));
        assert_eq!(
            may_share(colleague, Role::Prescriber, author, other, Role::Therapist, true),
            Err(ShareRefusal::NotTheAuthor)
        );
        assert_eq!(may_share(author, Role::Therapist, author, author, Role::Therapist, true), Err(ShareRefusal::Self_));
        assert_eq!(
            may_share(author, Role::Therapist, author, other, Role::Nurse, true),
            Err(ShareRefusal::NotAColleague)
        );
        assert_eq!(
            may_share(author, Role::Therapist, author, other, Role::Therapist, false),
            Err(ShareRefusal::NotAColleague)
        );
    }
}
