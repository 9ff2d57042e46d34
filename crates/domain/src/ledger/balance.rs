//! Balances derived from entries, and the rules an entry must pass given the entries before it.
//!
//! A [`Bucket`] is one lot of one product at one location (KAP-SPEC 9.4: "append-only CS ledger
//! per registered location and per product/lot"). Its balance is what should be in the locked
//! cabinet: receipts add; draws, destructions and transfers take away; administrations and waste
//! account for what was drawn; a count sets the balance to what was counted. Nothing here is
//! stored: the store keeps the entries, and the balance is their fold.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::Serialize;

use super::entry::{Direction, EntryDetail, EntryKind, InventoryKind, LedgerEntry};
use super::quantity::Micrograms;
use super::registry::{CsProduct, Lot, LotNumber};
use super::{LedgerSettings, Refusal};
use crate::ids::{CsProductId, DosingSessionId, LedgerEntryId, LocationId};
use crate::{UserId, UtcTs};

/// Where a balance is kept: location × product × lot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
pub struct StockKey {
    pub location: LocationId,
    pub product: CsProductId,
    pub lot: LotNumber,
}

impl StockKey {
    pub fn of(e: &LedgerEntry) -> Self {
        Self { location: e.location, product: e.product, lot: e.lot.clone() }
    }
}

/// What a check reads besides the bucket: the product and lot the entry is for, the location's
/// calendar date and the clock, and the clinic's settings.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    pub product: &'a CsProduct,
    pub lot: &'a Lot,
    /// Today in the location's time zone (for expiry).
    pub today: Date,
    pub now: UtcTs,
    pub settings: &'a LedgerSettings,
}

/// What the bucket remembers of each entry it has folded.
#[derive(Debug, Clone)]
struct Posted {
    kind: EntryKind,
    occurred_at: UtcTs,
    recorded_by: UserId,
    /// The change to the cabinet balance as applied.
    effect: Micrograms,
    /// The change it would have made had it not been included in a count.
    natural: Micrograms,
    reversed: bool,
    /// Index in the bucket's order, to tell entries before the last count from later ones.
    index: usize,
    /// Draws: the session and what is left to account for.
    session: Option<DosingSessionId>,
    remainder: Micrograms,
    /// Administrations and waste: the draw, the amount, who administered.
    draw: Option<LedgerEntryId>,
    amount: Micrograms,
    administered_by: Option<UserId>,
    /// The count this entry is included in, if any.
    included_in: Option<LedgerEntryId>,
}

/// A draw not yet fully accounted for by administrations and waste.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OpenDraw {
    pub draw: LedgerEntryId,
    pub session: DosingSessionId,
    pub drawn_at: UtcTs,
    pub remainder: Micrograms,
}

/// One lot's entries folded: the balance, the open draws, and what each entry did.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    key: Option<StockKey>,
    balance: Micrograms,
    posted: BTreeMap<LedgerEntryId, Posted>,
    order: Vec<LedgerEntryId>,
}

impl Bucket {
    /// The bucket from its entries in the order they were appended. Entries of another bucket than
    /// the first entry's are ignored (the store hands one bucket's entries; [`balances`] groups).
    pub fn fold(entries: &[LedgerEntry]) -> Self {
        let mut b = Bucket::default();
        for e in entries {
            b.apply(e);
        }
        b
    }

    pub fn balance(&self) -> Micrograms {
        self.balance
    }

    pub fn key(&self) -> Option<&StockKey> {
        self.key.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Draws still to be accounted for, oldest first.
    pub fn open_draws(&self) -> Vec<OpenDraw> {
        self.order
            .iter()
            .filter_map(|id| {
                let p = self.posted.get(id)?;
                let session = p.session?;
                (p.kind == EntryKind::Draw && !p.reversed && p.remainder.ug() > 0).then_some(OpenDraw {
                    draw: *id,
                    session,
                    drawn_at: p.occurred_at,
                    remainder: p.remainder,
                })
            })
            .collect()
    }

    /// The latest count that has not been reversed.
    pub fn last_count(&self) -> Option<LedgerEntryId> {
        self.order
            .iter()
            .rev()
            .copied()
            .find(|id| self.posted.get(id).is_some_and(|p| p.kind == EntryKind::InventoryCount && !p.reversed))
    }

    /// How much of a count's difference later entries included in it explain: the sum of the
    /// changes they would have made (a receipt found missing explains a shortfall of its amount).
    pub fn explained_by_later_entries(&self, count: LedgerEntryId) -> Micrograms {
        // An entry included in a count has effect 0 and its natural effect kept; the count's
        // expected would have been that much higher (or lower).
        self.included_entries(count).fold(Micrograms::ZERO, |acc, p| acc.saturating_add(p.natural))
    }

    fn included_entries(&self, count: LedgerEntryId) -> impl Iterator<Item = &Posted> {
        self.order.iter().filter_map(move |id| {
            let p = self.posted.get(id)?;
            (p.included_in == Some(count)).then_some(p)
        })
    }

    fn natural_effect(&self, e: &LedgerEntry) -> Micrograms {
        match &e.detail {
            EntryDetail::Receipt(r) => r.amount,
            EntryDetail::Draw(d) => d.amount.negated(),
            EntryDetail::Administration(_) | EntryDetail::Waste(_) => Micrograms::ZERO,
            EntryDetail::Destruction(d) => d.amount.negated(),
            EntryDetail::TransferOut(t) => t.amount.negated(),
            EntryDetail::Adjustment(a) => match a.direction {
                Direction::Increase => a.amount,
                Direction::Decrease => a.amount.negated(),
            },
            EntryDetail::InventoryCount(c) => c.difference(),
            EntryDetail::Reversal(r) => self.posted.get(&r.reverses).map_or(Micrograms::ZERO, |p| p.effect.negated()),
        }
    }

    fn effect(&self, e: &LedgerEntry) -> Micrograms {
        if e.included_in_count.is_some() { Micrograms::ZERO } else { self.natural_effect(e) }
    }

    /// Folds one entry. Total: an entry [`Bucket::check`] would refuse still folds to something,
    /// but only accepted entries are ever stored.
    pub fn apply(&mut self, e: &LedgerEntry) {
        let key = StockKey::of(e);
        match &self.key {
            Some(k) if *k != key => return,
            Some(_) => {}
            None => self.key = Some(key),
        }
        if self.posted.contains_key(&e.id) {
            return;
        }
        let natural = self.natural_effect(e);
        let effect = if e.included_in_count.is_some() { Micrograms::ZERO } else { natural };
        self.balance = self.balance.saturating_add(effect);
        let mut posted = Posted {
            kind: e.kind(),
            occurred_at: e.occurred_at,
            recorded_by: e.recorded_by.user,
            effect,
            natural,
            reversed: false,
            index: self.order.len(),
            session: None,
            remainder: Micrograms::ZERO,
            draw: None,
            amount: Micrograms::ZERO,
            administered_by: None,
            included_in: e.included_in_count,
        };
        match &e.detail {
            EntryDetail::Draw(d) => {
                posted.session = Some(d.session);
                posted.remainder = d.amount;
                posted.amount = d.amount;
            }
            EntryDetail::Administration(a) => {
                posted.draw = Some(a.draw);
                posted.amount = a.amount;
                posted.administered_by = Some(a.administered_by.user);
                self.change_remainder(a.draw, a.amount.negated());
            }
            EntryDetail::Waste(w) => {
                posted.draw = Some(w.draw);
                posted.amount = w.amount;
                self.change_remainder(w.draw, w.amount.negated());
            }
            EntryDetail::Reversal(r) => {
                let undone = self.posted.get_mut(&r.reverses).map(|p| {
                    p.reversed = true;
                    (p.kind, p.draw, p.amount)
                });
                if let Some((EntryKind::Administration | EntryKind::Waste, Some(draw), amount)) = undone {
                    self.change_remainder(draw, amount);
                }
            }
            _ => {}
        }
        self.posted.insert(e.id, posted);
        self.order.push(e.id);
    }

    fn change_remainder(&mut self, draw: LedgerEntryId, by: Micrograms) {
        if let Some(d) = self.posted.get_mut(&draw) {
            d.remainder = d.remainder.saturating_add(by);
        }
    }

    /// May `e` be appended to this bucket? Checks the entry's own content
    /// ([`LedgerEntry::check_content`]) and then the rules that depend on the entries before it.
    /// Returns the change it makes to the balance.
    pub fn check(&self, e: &LedgerEntry, ctx: &CheckContext) -> Result<Micrograms, Refusal> {
        if e.product != ctx.product.id || ctx.lot.product != ctx.product.id {
            return Err(Refusal::new("invalid", "product", "the lot is not a lot of this product"));
        }
        if e.lot != ctx.lot.number {
            return Err(Refusal::new("invalid", "lot", "the entry names another lot"));
        }
        if let Some(k) = &self.key
            && *k != StockKey::of(e)
        {
            return Err(Refusal::new("invalid", "lot", "the entry is for another location, product or lot"));
        }
        if self.posted.contains_key(&e.id) {
            return Err(Refusal::new("invalid", "id", "this entry is already in the ledger"));
        }
        if e.occurred_at > ctx.now {
            return Err(Refusal::new(
                "invalid",
                "occurred_at",
                "a record carries the date it actually happened, which cannot be in the future",
            ));
        }
        e.check_content(ctx.product, ctx.settings)?;
        self.check_included(e)?;
        let effect = self.effect(e);
        match &e.detail {
            EntryDetail::Receipt(_) | EntryDetail::Adjustment(_) => {}
            EntryDetail::Draw(_) => {
                if ctx.lot.is_expired_on(ctx.today) {
                    return Err(Refusal::new(
                        "expired_lot",
                        "lot",
                        format!(
                            "lot {} expired on {}: do not use it; record its destruction or return",
                            ctx.lot.number, ctx.lot.expiry
                        ),
                    ));
                }
            }
            EntryDetail::Administration(a) => {
                let draw = self.open_draw(a.draw)?;
                not_before_draw(e, draw)?;
                if draw.session != Some(a.session) {
                    return Err(Refusal::new("invalid", "session", "this draw was for another dosing session"));
                }
                if a.amount > draw.remainder {
                    return Err(Refusal::new(
                        "exceeds_draw",
                        "amount",
                        format!("only {} of this draw is left to account for", draw.remainder),
                    ));
                }
            }
            EntryDetail::Waste(w) => {
                let draw = self.open_draw(w.draw)?;
                not_before_draw(e, draw)?;
                if w.amount > draw.remainder {
                    return Err(Refusal::new(
                        "exceeds_draw",
                        "measure",
                        format!("only {} of this draw is left to account for", draw.remainder),
                    ));
                }
                // That the witness is licensed and not the person recording is the content check's.
                if let Some(witness) = &w.witness {
                    let gave_the_dose = self.posted.values().any(|p| {
                        p.kind == EntryKind::Administration
                            && !p.reversed
                            && p.draw == Some(w.draw)
                            && p.administered_by == Some(witness.user)
                    });
                    if gave_the_dose {
                        return Err(Refusal::new(
                            "witness",
                            "witness",
                            "the witness cannot be the person who gave the dose",
                        ));
                    }
                }
            }
            EntryDetail::Destruction(_) | EntryDetail::TransferOut(_) => {}
            EntryDetail::InventoryCount(c) => {
                if c.kind == InventoryKind::Initial && !self.is_empty() {
                    return Err(Refusal::new(
                        "count",
                        "kind",
                        "this lot already has ledger entries: the initial inventory comes first; record a count",
                    ));
                }
                if c.expected != self.balance {
                    return Err(Refusal::new(
                        "stale",
                        "expected",
                        format!(
                            "the ledger now expects {}: the ledger changed while the count was entered",
                            self.balance
                        ),
                    ));
                }
            }
            EntryDetail::Reversal(r) => self.check_reversal(e, r.reverses)?,
        }
        let after = self.balance.saturating_add(effect);
        if after.ug() < 0 {
            return Err(Refusal::new(
                "insufficient_stock",
                balance_field(e),
                format!("only {} of lot {} is on hand; this would leave {after}", self.balance, e.lot),
            ));
        }
        Ok(effect)
    }

    fn open_draw(&self, id: LedgerEntryId) -> Result<&Posted, Refusal> {
        match self.posted.get(&id) {
            Some(p) if p.kind == EntryKind::Draw && !p.reversed => Ok(p),
            Some(p) if p.kind == EntryKind::Draw && p.reversed => {
                Err(Refusal::new("invalid", "draw", "this draw was reversed"))
            }
            _ => Err(Refusal::new("invalid", "draw", "no draw of this lot has this id")),
        }
    }

    fn check_reversal(&self, e: &LedgerEntry, target: LedgerEntryId) -> Result<(), Refusal> {
        let Some(t) = self.posted.get(&target) else {
            return Err(Refusal::new("reversal", "reverses", "no entry of this lot has this id"));
        };
        if t.kind == EntryKind::Reversal {
            return Err(Refusal::new(
                "reversal",
                "reverses",
                "a reversal is not reversed: record the entry again instead",
            ));
        }
        if t.reversed {
            return Err(Refusal::new("reversal", "reverses", "this entry is already reversed"));
        }
        if t.kind == EntryKind::Draw {
            let accounted = self.posted.values().any(|p| p.draw == Some(target) && !p.reversed);
            if accounted {
                return Err(Refusal::new(
                    "reversal",
                    "reverses",
                    "reverse the administration and waste recorded against this draw first",
                ));
            }
        }
        // An entry from before the last count is already reflected in what was counted: undoing its
        // effect again would count it twice, so the reversal must say it is included in that count.
        if let Some(count) = self.last_count()
            && count != target
            && self.posted.get(&count).is_some_and(|c| t.index < c.index)
            && t.effect != Micrograms::ZERO
            && e.included_in_count != Some(count)
        {
            return Err(Refusal::new(
                "reversal",
                "included_in_count",
                "this entry is older than the last count, which already reflects what was on hand: mark the reversal as included in that count",
            ));
        }
        Ok(())
    }

    fn check_included(&self, e: &LedgerEntry) -> Result<(), Refusal> {
        let Some(count) = e.included_in_count else { return Ok(()) };
        let field = "included_in_count";
        match e.kind() {
            EntryKind::InventoryCount => {
                return Err(Refusal::new("invalid", field, "a count is not included in another count"));
            }
            EntryKind::Administration | EntryKind::Waste => {
                return Err(Refusal::new(
                    "invalid",
                    field,
                    "administrations and waste account for a draw and never change the cabinet balance",
                ));
            }
            _ => {}
        }
        if self.last_count() != Some(count) {
            return Err(Refusal::new("invalid", field, "name the latest count of this lot"));
        }
        let Some(c) = self.posted.get(&count) else {
            return Err(Refusal::new("invalid", field, "name the latest count of this lot"));
        };
        let before_count = match &e.detail {
            // A correction is included in a count when what it corrects was recorded before it.
            EntryDetail::Reversal(r) => self.posted.get(&r.reverses).is_some_and(|t| t.index < c.index),
            _ => e.occurred_at <= c.occurred_at,
        };
        if !before_count {
            return Err(Refusal::new(
                "invalid",
                field,
                "only something that happened before the count can be included in it",
            ));
        }
        Ok(())
    }

    /// Who recorded an entry of this bucket.
    pub fn recorded_by(&self, id: LedgerEntryId) -> Option<UserId> {
        self.posted.get(&id).map(|p| p.recorded_by)
    }
}

/// What is given or wasted from a draw happens after the draw.
fn not_before_draw(e: &LedgerEntry, draw: &Posted) -> Result<(), Refusal> {
    if e.occurred_at < draw.occurred_at {
        return Err(Refusal::new("invalid", "occurred_at", "this is dated before the draw it accounts for"));
    }
    Ok(())
}

/// The field a balance refusal points at: the quantity the person typed.
fn balance_field(e: &LedgerEntry) -> &'static str {
    match &e.detail {
        EntryDetail::Destruction(_) => "full_containers",
        EntryDetail::Adjustment(_) => "amount",
        EntryDetail::Reversal(_) => "reverses",
        EntryDetail::InventoryCount(_) => "counted",
        _ => "measure",
    }
}

/// Every bucket's balance from a location's (or a clinic's) entries in the order appended.
pub fn balances(entries: &[LedgerEntry]) -> BTreeMap<StockKey, Micrograms> {
    let mut buckets: BTreeMap<StockKey, Bucket> = BTreeMap::new();
    for e in entries {
        buckets.entry(StockKey::of(e)).or_default().apply(e);
    }
    buckets.into_iter().map(|(k, b)| (k, b.balance())).collect()
}

/// One line of a lot's running balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RunningLine {
    pub entry: LedgerEntryId,
    pub kind: EntryKind,
    pub occurred_at: UtcTs,
    pub change: Micrograms,
    pub balance: Micrograms,
}

/// A lot's entries with the balance after each, for the "running balance per lot" report.
pub fn running_balance(entries: &[LedgerEntry]) -> Vec<RunningLine> {
    let mut b = Bucket::default();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let before = b.balance();
        b.apply(e);
        out.push(RunningLine {
            entry: e.id,
            kind: e.kind(),
            occurred_at: e.occurred_at,
            change: b.balance().saturating_sub(before),
            balance: b.balance(),
        });
    }
    out
}

/// The spec's reconciliation of a lot since its last count (KAP-SPEC 9.4):
/// `expected = last inventory + receipts − administered − wasted − destroyed − transferred out`,
/// plus adjustments, minus what is drawn and not yet accounted for (`in_use`, zero once every
/// draw is settled). Each line is net of reversals recorded in the period; entries included in
/// the count are left out, since the count already holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Reconciliation {
    /// The last count's entry, if any; the period starts after it.
    pub since_count: Option<LedgerEntryId>,
    pub opening: Micrograms,
    pub receipts: Micrograms,
    pub administered: Micrograms,
    pub wasted: Micrograms,
    pub destroyed: Micrograms,
    pub transferred_out: Micrograms,
    /// Increases minus decreases.
    pub adjustments: Micrograms,
    /// Drawn in the period and not yet administered or wasted (negative when draws from before the
    /// count were settled after it).
    pub in_use: Micrograms,
    pub expected: Micrograms,
}

impl Reconciliation {
    /// The reconciliation of one lot's entries, in the order appended.
    pub fn of(entries: &[LedgerEntry]) -> Self {
        let bucket = Bucket::fold(entries);
        let count = bucket.last_count();
        let start = count.and_then(|c| entries.iter().position(|e| e.id == c)).map_or(0, |i| i + 1);
        let mut r = Reconciliation { since_count: count, ..Default::default() };
        if let Some(EntryDetail::InventoryCount(c)) =
            count.and_then(|c| entries.iter().find(|e| e.id == c)).map(|e| &e.detail)
        {
            r.opening = c.counted;
        }
        let by_id: BTreeMap<LedgerEntryId, &LedgerEntry> = entries.iter().map(|e| (e.id, e)).collect();
        let mut drawn = Micrograms::ZERO;
        for e in &entries[start.min(entries.len())..] {
            if e.included_in_count.is_some() {
                continue;
            }
            // A reversal counts against the line of the entry it undoes.
            let (detail, sign) = match &e.detail {
                EntryDetail::Reversal(rev) => match by_id.get(&rev.reverses) {
                    Some(t) => (&t.detail, -1),
                    None => continue,
                },
                d => (d, 1),
            };
            let add = |line: &mut Micrograms, amount: Micrograms| {
                *line = line.saturating_add(if sign < 0 { amount.negated() } else { amount });
            };
            match detail {
                EntryDetail::Receipt(x) => add(&mut r.receipts, x.amount),
                EntryDetail::Draw(x) => add(&mut drawn, x.amount),
                EntryDetail::Administration(x) => add(&mut r.administered, x.amount),
                EntryDetail::Waste(x) => add(&mut r.wasted, x.amount),
                EntryDetail::Destruction(x) => add(&mut r.destroyed, x.amount),
                EntryDetail::TransferOut(x) => add(&mut r.transferred_out, x.amount),
                EntryDetail::Adjustment(x) => match x.direction {
                    Direction::Increase => add(&mut r.adjustments, x.amount),
                    Direction::Decrease => add(&mut r.adjustments, x.amount.negated()),
                },
                // A reversed count after the last count cannot exist (the last count is the latest
                // one not reversed); a count's own reversal restores the period before it.
                EntryDetail::InventoryCount(_) | EntryDetail::Reversal(_) => {}
            }
        }
        r.in_use = drawn.saturating_sub(r.administered).saturating_sub(r.wasted);
        r.expected = r
            .opening
            .saturating_add(r.receipts)
            .saturating_sub(r.administered)
            .saturating_sub(r.wasted)
            .saturating_sub(r.destroyed)
            .saturating_sub(r.transferred_out)
            .saturating_add(r.adjustments)
            .saturating_sub(r.in_use);
        r
    }
}
