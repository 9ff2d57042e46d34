//! Discrepancies and their investigation, and the theft or significant-loss report with its
//! deadlines (KAP-SPEC 9.2, 9.4; [S55]).
//!
//! A count that differs from the ledger opens a discrepancy (TV-DEA-5); so can an incident found
//! another way (a break-in). Its record is an append-only list of [`DiscrepancyEvent`]s: notes of
//! the investigation, the registrant's judgement — "significance decided by registrant"
//! (TV-DEA-5) — and, for a theft or significant loss, the written notice to the DEA field office
//! within 1 business day of discovery and DEA Form 106 within 45 calendar days (TV-DEA-1,
//! TV-DEA-2). It stays on the admin dashboard until it is closed.

use std::collections::BTreeSet;

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

use super::access::{LedgerAction, ledger_allows};
use super::entry::{EntryDetail, InventoryKind, LedgerEntry, Person};
use super::quantity::Micrograms;
use super::registry::LotNumber;
use super::{Refusal, text};
use crate::UtcTs;
use crate::ids::{CsProductId, LedgerEntryId};

/// Written notice to the local DEA Field Division Office within 1 business day of discovery
/// [S55] (KAP-SPEC 9.2).
pub const NOTICE_BUSINESS_DAYS: u32 = 1;
/// DEA Form 106, submitted electronically within 45 calendar days of discovery [S55] (KAP-SPEC
/// 9.2; rule effective July 24 2023).
pub const FORM_106_CALENDAR_DAYS: i64 = 45;

/// Business days: not Saturday or Sunday (TV-DEA-2: Friday → Monday), and not one of the
/// clinic's listed holidays (the spec gives no holiday list; see [`super::LedgerSettings`]).
pub fn is_business_day(d: Date, holidays: &BTreeSet<Date>) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) && !holidays.contains(&d)
}

/// The `n`th business day after `d` (`n` = 1: the next business day).
pub fn business_days_after(d: Date, n: u32, holidays: &BTreeSet<Date>) -> Date {
    let mut day = d;
    let mut left = n;
    while left > 0 {
        day = match day.tomorrow() {
            Ok(t) => t,
            Err(_) => return Date::MAX,
        };
        if is_business_day(day, holidays) {
            left -= 1;
        }
    }
    day
}

/// The two deadlines of a theft or significant loss, from the day it was discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LossDeadlines {
    pub notice_due: Date,
    pub form_106_due: Date,
}

/// TV-DEA-1: discovered Mon 2025-06-02 → notice by Tue 2025-06-03, Form 106 by 2025-07-17.
pub fn loss_deadlines(discovered_on: Date, holidays: &BTreeSet<Date>) -> LossDeadlines {
    LossDeadlines {
        notice_due: business_days_after(discovered_on, NOTICE_BUSINESS_DAYS, holidays),
        form_106_due: discovered_on.checked_add(FORM_106_CALENDAR_DAYS.days()).unwrap_or(Date::MAX),
    }
}

/// Where one deadline stands on a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Deadline {
    Due { by: Date },
    Overdue { by: Date },
    Done { on: Date, late: bool },
}

impl Deadline {
    fn of(by: Date, done: Option<Date>, today: Date) -> Self {
        match done {
            Some(on) => Deadline::Done { on, late: on > by },
            None if today > by => Deadline::Overdue { by },
            None => Deadline::Due { by },
        }
    }
}

/// What opened the discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Origin {
    /// A count that differed from the ledger.
    Count {
        count_entry: LedgerEntryId,
        product: CsProductId,
        lot: LotNumber,
        expected: Micrograms,
        counted: Micrograms,
    },
    /// Found another way (a break-in, a missing container seen at once).
    Incident { description: String },
}

impl Origin {
    /// The discrepancy a count opens: any difference, except at the initial inventory, which has
    /// nothing to differ from (KAP-SPEC 9.4: "any discrepancy opens a loss investigation").
    pub fn from_count(entry: &LedgerEntry) -> Option<Origin> {
        let EntryDetail::InventoryCount(c) = &entry.detail else { return None };
        (c.kind != InventoryKind::Initial && c.counted != c.expected).then(|| Origin::Count {
            count_entry: entry.id,
            product: entry.product,
            lot: entry.lot.clone(),
            expected: c.expected,
            counted: c.counted,
        })
    }

    /// Counted minus expected (TV-DEA-5: −10 mg); none for an incident.
    pub fn difference(&self) -> Option<Micrograms> {
        match self {
            Origin::Count { expected, counted, .. } => Some(counted.saturating_sub(*expected)),
            Origin::Incident { .. } => None,
        }
    }
}

/// The factors of significance the registrant weighs ([S55] 21 CFR 1301.76(b), KAP-SPEC 9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignificanceFactor {
    QuantityRelativeToBusiness,
    SpecificDrug,
    AssociatedWithSpecificIndividuals,
    PatternOfLosses,
    LikelyDiversion,
    LocalTrends,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    Theft,
    SignificantLoss,
}

/// What can happen to a discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiscrepancyEvent {
    /// The first event, and only the first.
    Opened {
        origin: Origin,
        found_on: Date,
    },
    /// A step of the investigation.
    NoteAdded {
        text: String,
    },
    /// The registrant finds no theft or significant loss, and says why.
    JudgedNotSignificant {
        reason: String,
        factors: Vec<SignificanceFactor>,
    },
    /// The registrant finds a theft or significant loss: the deadlines run from `discovered_on`.
    JudgedTheftOrLoss {
        what: LossKind,
        discovered_on: Date,
        reason: String,
        factors: Vec<SignificanceFactor>,
    },
    /// The written notice to the DEA field office.
    NoticeSent {
        on: Date,
        to: String,
    },
    /// DEA Form 106, submitted electronically.
    Form106Submitted {
        on: Date,
        reference: String,
    },
    Closed {
        summary: String,
    },
}

impl DiscrepancyEvent {
    fn action(&self) -> LedgerAction {
        match self {
            DiscrepancyEvent::Opened { .. } | DiscrepancyEvent::NoteAdded { .. } => LedgerAction::Investigate,
            DiscrepancyEvent::JudgedNotSignificant { .. }
            | DiscrepancyEvent::JudgedTheftOrLoss { .. }
            | DiscrepancyEvent::Closed { .. } => LedgerAction::DecideDiscrepancy,
            DiscrepancyEvent::NoticeSent { .. } | DiscrepancyEvent::Form106Submitted { .. } => {
                LedgerAction::RecordLossReport
            }
        }
    }
}

/// One event as stored, with when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscrepancyRecord {
    pub at: UtcTs,
    pub by: Person,
    pub event: DiscrepancyEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Note {
    pub at: UtcTs,
    pub by: Person,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "judgement", rename_all = "snake_case")]
pub enum Judgement {
    NotSignificant { reason: String, factors: Vec<SignificanceFactor>, by: Person },
    TheftOrLoss { what: LossKind, discovered_on: Date, reason: String, factors: Vec<SignificanceFactor>, by: Person },
}

/// A discrepancy folded from its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Discrepancy {
    pub origin: Origin,
    pub found_on: Date,
    pub opened_by: Person,
    pub notes: Vec<Note>,
    pub judgement: Option<Judgement>,
    pub notice_sent: Option<(Date, String)>,
    pub form_106: Option<(Date, String)>,
    pub closed: Option<(UtcTs, String)>,
}

/// What a decision on a discrepancy reads besides its records.
#[derive(Debug, Clone, Copy)]
pub struct DiscrepancyContext<'a> {
    /// Today at the location.
    pub today: Date,
    pub holidays: &'a BTreeSet<Date>,
    /// How much of the difference entries later included in the count explain
    /// ([`super::Bucket::explained_by_later_entries`]).
    pub explained: Micrograms,
}

impl Discrepancy {
    /// The discrepancy from its records in order; `None` when the first is not `Opened`.
    pub fn replay(records: &[DiscrepancyRecord]) -> Option<Self> {
        let (first, rest) = records.split_first()?;
        let DiscrepancyEvent::Opened { origin, found_on } = &first.event else { return None };
        let mut d = Discrepancy {
            origin: origin.clone(),
            found_on: *found_on,
            opened_by: first.by.clone(),
            notes: Vec::new(),
            judgement: None,
            notice_sent: None,
            form_106: None,
            closed: None,
        };
        for r in rest {
            d.apply(r);
        }
        Some(d)
    }

    fn apply(&mut self, r: &DiscrepancyRecord) {
        let by = r.by.clone();
        match &r.event {
            DiscrepancyEvent::Opened { .. } => {}
            DiscrepancyEvent::NoteAdded { text } => self.notes.push(Note { at: r.at, by, text: text.clone() }),
            DiscrepancyEvent::JudgedNotSignificant { reason, factors } => {
                self.judgement =
                    Some(Judgement::NotSignificant { reason: reason.clone(), factors: factors.clone(), by });
            }
            DiscrepancyEvent::JudgedTheftOrLoss { what, discovered_on, reason, factors } => {
                self.judgement = Some(Judgement::TheftOrLoss {
                    what: *what,
                    discovered_on: *discovered_on,
                    reason: reason.clone(),
                    factors: factors.clone(),
                    by,
                });
            }
            DiscrepancyEvent::NoticeSent { on, to } => self.notice_sent = Some((*on, to.clone())),
            DiscrepancyEvent::Form106Submitted { on, reference } => self.form_106 = Some((*on, reference.clone())),
            DiscrepancyEvent::Closed { summary } => self.closed = Some((r.at, summary.clone())),
        }
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// The difference not yet explained by entries included in the count.
    pub fn unexplained(&self, explained: Micrograms) -> Option<Micrograms> {
        self.origin.difference().map(|d| d.saturating_sub(explained))
    }

    /// The deadlines, once the registrant has judged it a theft or significant loss.
    pub fn deadlines(&self, holidays: &BTreeSet<Date>) -> Option<LossDeadlines> {
        match &self.judgement {
            Some(Judgement::TheftOrLoss { discovered_on, .. }) => Some(loss_deadlines(*discovered_on, holidays)),
            _ => None,
        }
    }

    /// The notice and Form 106 deadlines on `today`, for the dashboard.
    pub fn timers(&self, today: Date, holidays: &BTreeSet<Date>) -> Option<(Deadline, Deadline)> {
        let d = self.deadlines(holidays)?;
        Some((
            Deadline::of(d.notice_due, self.notice_sent.as_ref().map(|n| n.0), today),
            Deadline::of(d.form_106_due, self.form_106.as_ref().map(|f| f.0), today),
        ))
    }

    /// May `record` be appended? Every refusal names its field.
    pub fn decide(&self, record: &DiscrepancyRecord, ctx: &DiscrepancyContext) -> Result<(), Refusal> {
        let event = &record.event;
        if !ledger_allows(record.by.role, event.action()) {
            return Err(Refusal::new(
                "role",
                "by",
                format!("a {} may not do this with a discrepancy", record.by.role.label()),
            ));
        }
        if self.closed.is_some() {
            return Err(Refusal::new("state", "kind", "this discrepancy is closed"));
        }
        let not_future = |field: &'static str, d: Date| {
            if d > ctx.today { Err(Refusal::new("invalid", field, "this date is in the future")) } else { Ok(()) }
        };
        match event {
            DiscrepancyEvent::Opened { .. } => Err(Refusal::new("state", "kind", "this discrepancy is already open")),
            DiscrepancyEvent::NoteAdded { text: t } => text("text", t, 20_000).map(drop).map_err(Refusal::from),
            DiscrepancyEvent::JudgedNotSignificant { reason, .. } => {
                text("reason", reason, 4000)?;
                if let Some(Judgement::TheftOrLoss { .. }) = &self.judgement {
                    return Err(Refusal::new(
                        "state",
                        "kind",
                        "it was judged a theft or significant loss: the report stands; add a note instead",
                    ));
                }
                Ok(())
            }
            DiscrepancyEvent::JudgedTheftOrLoss { discovered_on, reason, .. } => {
                text("reason", reason, 4000)?;
                not_future("discovered_on", *discovered_on)?;
                if let Some(Judgement::TheftOrLoss { .. }) = &self.judgement {
                    return Err(Refusal::new("state", "kind", "it is already judged a theft or significant loss"));
                }
                Ok(())
            }
            DiscrepancyEvent::NoticeSent { on, to } => {
                text("to", to, 500)?;
                not_future("on", *on)?;
                self.after_discovery("on", *on)?;
                if self.notice_sent.is_some() {
                    return Err(Refusal::new("state", "kind", "the notice is already recorded"));
                }
                Ok(())
            }
            DiscrepancyEvent::Form106Submitted { on, reference } => {
                text("reference", reference, 100)?;
                not_future("on", *on)?;
                self.after_discovery("on", *on)?;
                if self.form_106.is_some() {
                    return Err(Refusal::new("state", "kind", "the Form 106 submission is already recorded"));
                }
                Ok(())
            }
            DiscrepancyEvent::Closed { summary } => {
                text("summary", summary, 4000)?;
                match &self.judgement {
                    Some(Judgement::TheftOrLoss { .. }) => {
                        if self.notice_sent.is_none() {
                            return Err(Refusal::new(
                                "loss_report",
                                "notice",
                                "record the written notice to the DEA field office first",
                            ));
                        }
                        if self.form_106.is_none() {
                            return Err(Refusal::new(
                                "loss_report",
                                "form_106",
                                "record the DEA Form 106 submission first",
                            ));
                        }
                        Ok(())
                    }
                    Some(Judgement::NotSignificant { .. }) => Ok(()),
                    None if self.unexplained(ctx.explained) == Some(Micrograms::ZERO) => Ok(()),
                    None => Err(Refusal::new(
                        "state",
                        "judgement",
                        "the difference is not explained: the registrant decides whether it is a theft or significant loss first",
                    )),
                }
            }
        }
    }

    fn after_discovery(&self, field: &'static str, on: Date) -> Result<(), Refusal> {
        match &self.judgement {
            Some(Judgement::TheftOrLoss { discovered_on, .. }) if on >= *discovered_on => Ok(()),
            Some(Judgement::TheftOrLoss { .. }) => {
                Err(Refusal::new("invalid", field, "this date is before the loss was discovered"))
            }
            _ => Err(Refusal::new(
                "state",
                "kind",
                "only a theft or significant loss is reported: the registrant judges it first",
            )),
        }
    }
}

/// Checks the first record of a discrepancy.
pub fn check_opening(record: &DiscrepancyRecord, today: Date) -> Result<(), Refusal> {
    if !ledger_allows(record.by.role, LedgerAction::Investigate) {
        return Err(Refusal::new("role", "by", format!("a {} may not open a discrepancy", record.by.role.label())));
    }
    match &record.event {
        DiscrepancyEvent::Opened { origin, found_on } => {
            if *found_on > today {
                return Err(Refusal::new("invalid", "found_on", "this date is in the future"));
            }
            match origin {
                Origin::Incident { description } => {
                    text("description", description, 4000).map(drop).map_err(Refusal::from)
                }
                Origin::Count { expected, counted, .. } if expected == counted => {
                    Err(Refusal::new("invalid", "counted", "the count matches the ledger: there is no discrepancy"))
                }
                Origin::Count { .. } => Ok(()),
            }
        }
        _ => Err(Refusal::new("state", "kind", "a discrepancy starts by being opened")),
    }
}
