//! The patient's journal (portal): entries written any time, optionally linked to a dosing
//! session, prompted after each dosing session by grounding and reflection prompts from
//! `content/journal/prompts.json`.
//!
//! Privacy is the point of the design:
//! - An entry is **private** when written. Only the patient reads a private entry: no staff role,
//!   not even the patient's therapist or an admin, ever does ([`JournalEntry::may_read`]).
//! - The patient may **share** an entry with the care team: the clinicians who read the clinical
//!   record (prescribers, nurses, therapists). It then waits unread in the therapist's queue until
//!   someone on the team reads it ([`JournalEntry::mark_read`]).
//! - A shared entry is frozen: what the team reads must not change under them. Sharing can be
//!   withdrawn until someone on the team has read the entry; after that it has informed care, so
//!   it stays shared (and in the designated record set, see `records_access`). The portal says so
//!   (`sharing_notice` in the prompts file).
//! - A private entry is the patient's own notebook: they may edit or delete it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::permissions::{Action, allows};
use crate::{FieldError, PatientId, Role, UserId, UtcTs};

/// The longest entry, in characters.
pub const MAX_TEXT: usize = 20_000;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// A patient account, with the patient record it belongs to.
    Patient(PatientId),
    Staff {
        user: UserId,
        role: Role,
    },
}

/// Why an action on an entry is refused. [`Refusal::code`] is the stable code an API returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not this patient's entry, or staff on a private entry. The shell answers "not found": a
    /// private entry's existence is not disclosed either.
    #[error("not found")]
    NotFound,
    #[error("a shared entry is not changed: what your care team reads stays as they read it")]
    Shared,
    #[error("your care team has read this entry, so it stays shared")]
    AlreadyRead,
    #[error("this entry is not shared")]
    NotShared,
    #[error(transparent)]
    Invalid(#[from] FieldError),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::Shared | Refusal::AlreadyRead | Refusal::NotShared => "state",
            Refusal::Invalid(_) => "invalid",
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct JournalEntry {
    pub patient: PatientId,
    pub written_at: UtcTs,
    pub updated_at: UtcTs,
    pub text: String,
    /// The dosing session the entry is about, if the patient linked one.
    pub session: Option<Uuid>,
    /// The prompt the patient answered, by its id in the prompts file.
    pub prompt: Option<String>,
    /// When the patient shared it with the care team (`None`: private).
    pub shared_at: Option<UtcTs>,
    /// Who on the care team read it first, and when (`None`: unread in the queue).
    pub first_read: Option<(UserId, UtcTs)>,
}

fn parse_text(raw: &str) -> Result<String, FieldError> {
    crate::text::plain("text", raw, MAX_TEXT, true)
}

impl JournalEntry {
    /// A new private entry by the patient. `session` and `prompt` are checked by the shell (the
    /// session is one of this patient's, the prompt one of the file's).
    pub fn write(
        patient: PatientId,
        at: UtcTs,
        text: &str,
        session: Option<Uuid>,
        prompt: Option<String>,
    ) -> Result<Self, Refusal> {
        Ok(Self {
            patient,
            written_at: at,
            updated_at: at,
            text: parse_text(text)?,
            session,
            prompt,
            shared_at: None,
            first_read: None,
        })
    }

    pub fn is_shared(&self) -> bool {
        self.shared_at.is_some()
    }

    fn is_owner(&self, viewer: Viewer) -> bool {
        viewer == Viewer::Patient(self.patient)
    }

    /// The patient always reads their own entries; the care team reads shared ones only; no one
    /// else reads any.
    pub fn may_read(&self, viewer: Viewer) -> bool {
        match viewer {
            Viewer::Patient(p) => p == self.patient,
            Viewer::Staff { role, .. } => self.is_shared() && allows(Some(role), Action::ReadClinicalRecord),
        }
    }

    fn owner(&self, viewer: Viewer) -> Result<(), Refusal> {
        if self.is_owner(viewer) { Ok(()) } else { Err(Refusal::NotFound) }
    }

    /// Rewrites a private entry (its patient only).
    pub fn edit(&mut self, viewer: Viewer, at: UtcTs, text: &str) -> Result<(), Refusal> {
        self.owner(viewer)?;
        if self.is_shared() {
            return Err(Refusal::Shared);
        }
        self.text = parse_text(text)?;
        self.updated_at = at;
        Ok(())
    }

    /// May the patient delete it? Only a private entry: a shared one may have informed care.
    pub fn may_delete(&self, viewer: Viewer) -> Result<(), Refusal> {
        self.owner(viewer)?;
        if self.is_shared() { Err(Refusal::Shared) } else { Ok(()) }
    }

    /// Shares the entry with the care team (its patient only). Sharing again changes nothing.
    pub fn share(&mut self, viewer: Viewer, at: UtcTs) -> Result<(), Refusal> {
        self.owner(viewer)?;
        if self.shared_at.is_none() {
            self.shared_at = Some(at);
            self.updated_at = at;
        }
        Ok(())
    }

    /// Makes a shared entry private again, while no one on the team has read it.
    pub fn unshare(&mut self, viewer: Viewer, at: UtcTs) -> Result<(), Refusal> {
        self.owner(viewer)?;
        if !self.is_shared() {
            return Err(Refusal::NotShared);
        }
        if self.first_read.is_some() {
            return Err(Refusal::AlreadyRead);
        }
        self.shared_at = None;
        self.updated_at = at;
        Ok(())
    }

    /// A clinician opened a shared entry: the first read takes it out of the unread queue. A
    /// private entry is refused as if it did not exist.
    pub fn mark_read(&mut self, viewer: Viewer, at: UtcTs) -> Result<(), Refusal> {
        let Viewer::Staff { user, .. } = viewer else { return Err(Refusal::NotFound) };
        if !self.may_read(viewer) {
            return Err(Refusal::NotFound);
        }
        if self.first_read.is_none() {
            self.first_read = Some((user, at));
        }
        Ok(())
    }

    /// Shared and not yet read: in the therapist's queue.
    pub fn is_unread(&self) -> bool {
        self.is_shared() && self.first_read.is_none()
    }
}

/// The dosing session the portal should prompt the patient to write about: the latest one that
/// has ended (`(session, ended_at)`, any order) and that no entry is linked to yet. Only the
/// latest: an older session the patient did not write about is not brought back.
pub fn session_to_prompt(ended_sessions: &[(Uuid, UtcTs)], entries: &[JournalEntry], now: UtcTs) -> Option<Uuid> {
    let latest = ended_sessions.iter().filter(|(_, ended)| *ended <= now).max_by_key(|(_, ended)| *ended)?;
    let written = entries.iter().any(|e| e.session == Some(latest.0));
    (!written).then_some(latest.0)
}

/// The two kinds of prompt (see the prompts file's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Grounding,
    Reflection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    pub id: String,
    pub kind: PromptKind,
    pub text: String,
    /// Where the wording comes from (the spec gives none: clinic-editable content).
    pub source: String,
}

/// `content/journal/prompts.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptSet {
    pub version: String,
    pub source: String,
    /// Who reads shared entries and when, shown on every journal page.
    pub sharing_notice: String,
    /// Crisis resources, shown on every journal page.
    pub crisis: String,
    pub prompts: Vec<Prompt>,
}

/// The longest prompt, in characters: a prompt is a question, not an essay.
const MAX_PROMPT: usize = 300;

impl PromptSet {
    /// Parses and checks the file: every text present, ids unique and URL-safe, at least one prompt
    /// of each kind, each prompt with its source, the crisis text naming 988.
    pub fn parse(json: &str) -> Result<Self, String> {
        let set: PromptSet = serde_json::from_str(json).map_err(|e| format!("journal prompts: {e}"))?;
        let blank = |what: &str, s: &str| {
            if s.trim().is_empty() { Err(format!("journal prompts: {what} is empty")) } else { Ok(()) }
        };
        blank("version", &set.version)?;
        blank("source", &set.source)?;
        blank("sharing_notice", &set.sharing_notice)?;
        if !set.crisis.contains("988") {
            return Err("journal prompts: the crisis text must give 988".into());
        }
        let mut ids = HashSet::new();
        for p in &set.prompts {
            let valid_id =
                !p.id.is_empty() && p.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_id {
                return Err(format!("journal prompts: id {:?} is not lower-case letters, digits and '-'", p.id));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(format!("journal prompts: id {:?} appears twice", p.id));
            }
            blank(&format!("{}.text", p.id), &p.text)?;
            blank(&format!("{}.source", p.id), &p.source)?;
            if p.text.chars().count() > MAX_PROMPT {
                return Err(format!("journal prompts: {}.text is over {MAX_PROMPT} characters", p.id));
            }
        }
        for kind in [PromptKind::Grounding, PromptKind::Reflection] {
            if !set.prompts.iter().any(|p| p.kind == kind) {
                return Err(format!("journal prompts: no {kind:?} prompt"));
            }
        }
        Ok(set)
    }

    pub fn of_kind(&self, kind: PromptKind) -> impl Iterator<Item = &Prompt> {
        self.prompts.iter().filter(move |p| p.kind == kind)
    }

    pub fn get(&self, id: &str) -> Option<&Prompt> {
        self.prompts.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../content/journal/prompts.json");

    fn ts(minutes: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_790_000_000_000_000 + minutes * 60_000_000)
    }

    fn entry(patient: PatientId) -> JournalEntry {
        JournalEntry::write(patient, ts(0), "  The river again.\r\nI felt calm. ", None, None).unwrap()
    }

    fn staff(role: Role) -> Viewer {
        Viewer::Staff { user: UserId::new(), role }
    }

    #[test]
    fn an_entry_is_plain_text_within_limits() {
        let p = PatientId::new();
        assert_eq!(entry(p).text, "The river again.\nI felt calm.");
        let e = JournalEntry::write(p, ts(0), "   ", None, None).unwrap_err();
        assert!(matches!(e, Refusal::Invalid(FieldError { field: "text", .. })));
        assert!(JournalEntry::write(p, ts(0), &"x".repeat(MAX_TEXT), None, None).is_ok());
        assert!(JournalEntry::write(p, ts(0), &"x".repeat(MAX_TEXT + 1), None, None).is_err());
    }

    #[test]
    fn staff_never_read_a_private_entry() {
        let p = PatientId::new();
        let mut e = entry(p);
        assert!(!e.is_shared(), "private by default");
        assert!(e.may_read(Viewer::Patient(p)));
        assert!(!e.may_read(Viewer::Patient(PatientId::new())), "never another patient");
        for role in Role::ALL {
            assert!(!e.may_read(staff(role)), "{role:?} never reads a private entry");
            assert_eq!(e.mark_read(staff(role), ts(1)), Err(Refusal::NotFound), "{role:?}");
        }
        assert_eq!(e.first_read, None);
    }

    #[test]
    fn a_shared_entry_is_read_by_the_care_team_only_and_leaves_the_queue_when_read() {
        let p = PatientId::new();
        let mut e = entry(p);
        assert_eq!(e.share(staff(Role::Therapist), ts(1)), Err(Refusal::NotFound), "only the patient shares");
        assert_eq!(e.share(Viewer::Patient(PatientId::new()), ts(1)), Err(Refusal::NotFound));
        e.share(Viewer::Patient(p), ts(1)).unwrap();
        assert!(e.is_unread());
        for role in Role::ALL {
            let expected = matches!(role, Role::Prescriber | Role::Nurse | Role::Therapist);
            assert_eq!(e.may_read(staff(role)), expected, "{role:?}");
        }
        assert_eq!(e.mark_read(staff(Role::Frontdesk), ts(2)), Err(Refusal::NotFound));
        let therapist = UserId::new();
        e.mark_read(Viewer::Staff { user: therapist, role: Role::Therapist }, ts(3)).unwrap();
        e.mark_read(staff(Role::Nurse), ts(4)).unwrap();
        assert_eq!(e.first_read, Some((therapist, ts(3))), "the first read is kept");
        assert!(!e.is_unread());
        assert_eq!(e.mark_read(Viewer::Patient(p), ts(5)), Err(Refusal::NotFound), "the patient is not the team");
    }

    #[test]
    fn a_shared_entry_is_frozen_and_stays_shared_once_read() {
        let p = PatientId::new();
        let me = Viewer::Patient(p);
        let mut e = entry(p);
        e.edit(me, ts(1), "Rewritten while private.").unwrap();
        assert_eq!((e.text.as_str(), e.updated_at), ("Rewritten while private.", ts(1)));
        assert_eq!(e.edit(Viewer::Patient(PatientId::new()), ts(2), "x"), Err(Refusal::NotFound));
        assert_eq!(e.unshare(me, ts(2)), Err(Refusal::NotShared));
        e.share(me, ts(2)).unwrap();
        assert_eq!(e.edit(me, ts(3), "Changed after sharing"), Err(Refusal::Shared));
        assert_eq!(e.may_delete(me), Err(Refusal::Shared));
        e.unshare(me, ts(4)).unwrap();
        assert!(!e.is_shared(), "withdrawn before anyone read it");
        assert_eq!(e.may_delete(me), Ok(()));
        assert_eq!(e.may_delete(Viewer::Patient(PatientId::new())), Err(Refusal::NotFound));
        e.share(me, ts(5)).unwrap();
        e.mark_read(staff(Role::Therapist), ts(6)).unwrap();
        assert_eq!(e.unshare(me, ts(7)), Err(Refusal::AlreadyRead));
        assert!(e.is_shared());
    }

    #[test]
    fn the_latest_ended_session_without_an_entry_is_prompted() {
        let p = PatientId::new();
        let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let sessions = [(s2, ts(100)), (s1, ts(10))];
        assert_eq!(session_to_prompt(&sessions, &[], ts(50)), Some(s1), "session 2 has not ended yet");
        assert_eq!(session_to_prompt(&sessions, &[], ts(200)), Some(s2));
        let linked = JournalEntry::write(p, ts(150), "After session 2", Some(s2), None).unwrap();
        assert_eq!(session_to_prompt(&sessions, std::slice::from_ref(&linked), ts(200)), None, "older ones stay quiet");
        assert_eq!(session_to_prompt(&[], &[], ts(200)), None);
    }

    #[test]
    fn the_shipped_prompts_parse_with_a_source_each() {
        let set = PromptSet::parse(SHIPPED).unwrap();
        assert!(set.of_kind(PromptKind::Grounding).count() >= 1);
        assert!(set.of_kind(PromptKind::Reflection).count() >= 1);
        assert!(set.prompts.iter().all(|p| p.source.contains("clinic-editable")), "the spec gives no wording");
        assert!(set.crisis.contains("988"));
        assert!(set.sharing_notice.contains("care team"));
        assert!(set.get("reflection-intention").is_some());
    }

    #[test]
    fn a_broken_prompts_file_is_refused() {
        let mut v: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        let dup = v["prompts"][0].clone();
        v["prompts"].as_array_mut().unwrap().push(dup);
        assert!(PromptSet::parse(&v.to_string()).unwrap_err().contains("twice"));
        let mut v: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        v["prompts"].as_array_mut().unwrap().retain(|p| p["kind"] != "reflection");
        assert!(PromptSet::parse(&v.to_string()).unwrap_err().contains("Reflection"));
        let mut v: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        v["crisis"] = "Call someone.".into();
        assert!(PromptSet::parse(&v.to_string()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        v["prompts"][0]["source"] = " ".into();
        assert!(PromptSet::parse(&v.to_string()).unwrap_err().contains("source"));
        let mut v: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        v["prompts"][0]["id"] = "Bad Id".into();
        assert!(PromptSet::parse(&v.to_string()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        v["prompts"][0]["extra"] = 1.into();
        assert!(PromptSet::parse(&v.to_string()).is_err(), "unknown fields are typos");
    }
}
