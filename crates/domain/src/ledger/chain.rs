//! The ledger's hash chain: one chain per location, built like the audit log's
//! ([`crate::audit`]): `hash = SHA-256(prev_hash || length-prefixed fields)`, `seq` without gaps,
//! and a head per location kept by the store, so an edited, re-ordered, deleted or truncated entry
//! is found (`kapstone ledger verify`).
//!
//! Each stored entry also keeps the change it made to its lot's balance (`change_ug`, decided by
//! [`super::Bucket::check`] when it was appended), so a report can sum balances in SQL. It is
//! hashed, and the verifier folds every lot again and checks each stored change against the
//! fold: a balance read from the store is always one the entries derive.
//!
//! The entry itself is hashed as the JSON text the store keeps (`body`), never re-serialised: the
//! verifier hashes exactly the stored bytes, so a store must keep the text as written (a `TEXT`
//! column, not PostgreSQL `jsonb`, which reorders keys). The columns a store copies out of the body
//! for its indexes (product, lot, kind, times) are hashed too, and the verifier checks that they
//! still agree with the body, so a report filtered on a column cannot be misled by an edited column.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::balance::{Bucket, StockKey};
use super::entry::LedgerEntry;
use super::quantity::Micrograms;
use crate::UtcTs;
use crate::audit::{Hash, hash_field};

/// An entry as stored, every hashed value as text exactly as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLedgerEntry {
    pub seq: i64,
    pub location_id: String,
    pub entry_id: String,
    pub product_id: String,
    pub lot: String,
    pub kind: String,
    pub occurred_at: UtcTs,
    pub recorded_at: UtcTs,
    pub recorded_by: String,
    /// Draws and administrations: the dosing session.
    pub session_id: Option<String>,
    /// Administrations: the patient.
    pub patient_id: Option<String>,
    /// The change to the lot's balance, in µg.
    pub change_ug: i64,
    /// The JSON of the [`LedgerEntry`].
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredLedgerEntry {
    /// Places `entry`, which changes its lot's balance by `change` (what [`super::Bucket::check`]
    /// returned), after `prev` (the location's head; `None` for its first entry).
    pub fn chain(
        entry: &LedgerEntry,
        change: Micrograms,
        prev: Option<(i64, Hash)>,
    ) -> Result<Self, serde_json::Error> {
        let (prev_seq, prev_hash) = prev.unwrap_or((0, Hash::GENESIS));
        let mut stored = Self {
            seq: prev_seq + 1,
            location_id: entry.location.to_string(),
            entry_id: entry.id.to_string(),
            product_id: entry.product.to_string(),
            lot: entry.lot.as_str().to_owned(),
            kind: entry.kind().as_str().to_owned(),
            occurred_at: entry.occurred_at,
            recorded_at: entry.recorded_at,
            recorded_by: entry.recorded_by.user.to_string(),
            session_id: entry.session().map(|s| s.to_string()),
            patient_id: entry.patient().map(|p| p.to_string()),
            change_ug: change.ug(),
            body: serde_json::to_string(entry)?,
            prev_hash: prev_hash.to_hex(),
            hash: String::new(),
        };
        stored.hash = stored.compute_hash(prev_hash).to_hex();
        Ok(stored)
    }

    pub fn compute_hash(&self, prev: Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(prev.0);
        for v in [
            Some(self.seq.to_string().as_str()),
            Some(&self.location_id),
            Some(&self.entry_id),
            Some(&self.product_id),
            Some(&self.lot),
            Some(&self.kind),
            Some(&self.occurred_at.unix_micros().to_string()),
            Some(&self.recorded_at.unix_micros().to_string()),
            Some(&self.recorded_by),
            self.session_id.as_deref(),
            self.patient_id.as_deref(),
            Some(&self.change_ug.to_string()),
            Some(&self.body),
        ] {
            hash_field(&mut h, v);
        }
        Hash(h.finalize().into())
    }

    /// The entry the body holds, if it still reads as one.
    pub fn entry(&self) -> Option<LedgerEntry> {
        serde_json::from_str(&self.body).ok()
    }

    /// The first column that no longer agrees with the body.
    fn column_mismatch(&self, e: &LedgerEntry) -> Option<&'static str> {
        [
            ("location_id", e.location.to_string() == self.location_id),
            ("entry_id", e.id.to_string() == self.entry_id),
            ("product_id", e.product.to_string() == self.product_id),
            ("lot", e.lot.as_str() == self.lot),
            ("kind", e.kind().as_str() == self.kind),
            ("occurred_at", e.occurred_at == self.occurred_at),
            ("recorded_at", e.recorded_at == self.recorded_at),
            ("recorded_by", e.recorded_by.user.to_string() == self.recorded_by),
            ("session_id", e.session().map(|s| s.to_string()) == self.session_id),
            ("patient_id", e.patient().map(|p| p.to_string()) == self.patient_id),
        ]
        .into_iter()
        .find_map(|(name, same)| (!same).then_some(name))
    }
}

/// The first broken link of a location's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerChainBreak {
    #[error("entry {found} belongs to another location's chain")]
    WrongLocation { found: i64 },
    #[error("ledger entry {expected} is missing (next stored entry is {found})")]
    Missing { expected: i64, found: i64 },
    #[error("ledger entry {seq} does not follow the entry before it (its prev_hash does not match)")]
    Broken { seq: i64 },
    #[error("ledger entry {seq} was altered (its content does not match its hash)")]
    Altered { seq: i64 },
    #[error("ledger entry {seq} no longer reads as an entry")]
    Unreadable { seq: i64 },
    #[error("ledger entry {seq}: the {column} column does not match the entry")]
    ColumnMismatch { seq: i64, column: &'static str },
    #[error("ledger entry {seq} records a balance change of {stored} µg but its lot's entries give {derived} µg")]
    ChangeMismatch { seq: i64, stored: i64, derived: i64 },
    #[error("the chain ends at entry {last} but its head records {head} entries (entries were deleted from the end)")]
    Truncated { last: i64, head: i64 },
    #[error("the chain head records {head} entries but entry {last} was found after it")]
    HeadBehind { last: i64, head: i64 },
    #[error("the chain head hash does not match the last entry")]
    HeadMismatch,
}

/// Streaming verifier of one location's chain: feed entries in `seq` order, then
/// [`LedgerChainVerifier::finish`] with the location's head.
#[derive(Debug)]
pub struct LedgerChainVerifier {
    location_id: String,
    next_seq: i64,
    prev: Hash,
    buckets: BTreeMap<StockKey, Bucket>,
}

impl LedgerChainVerifier {
    pub fn new(location_id: impl Into<String>) -> Self {
        Self { location_id: location_id.into(), next_seq: 1, prev: Hash::GENESIS, buckets: BTreeMap::new() }
    }

    pub fn push(&mut self, e: &StoredLedgerEntry) -> Result<(), LedgerChainBreak> {
        if e.location_id != self.location_id {
            return Err(LedgerChainBreak::WrongLocation { found: e.seq });
        }
        if e.seq != self.next_seq {
            return Err(LedgerChainBreak::Missing { expected: self.next_seq, found: e.seq });
        }
        if Hash::from_hex(&e.prev_hash) != Some(self.prev) {
            return Err(LedgerChainBreak::Broken { seq: e.seq });
        }
        let computed = e.compute_hash(self.prev);
        if Hash::from_hex(&e.hash) != Some(computed) {
            return Err(LedgerChainBreak::Altered { seq: e.seq });
        }
        let entry = e.entry().ok_or(LedgerChainBreak::Unreadable { seq: e.seq })?;
        if let Some(column) = e.column_mismatch(&entry) {
            return Err(LedgerChainBreak::ColumnMismatch { seq: e.seq, column });
        }
        let bucket = self.buckets.entry(StockKey::of(&entry)).or_default();
        let before = bucket.balance();
        bucket.apply(&entry);
        let derived = bucket.balance().saturating_sub(before).ug();
        if derived != e.change_ug {
            return Err(LedgerChainBreak::ChangeMismatch { seq: e.seq, stored: e.change_ug, derived });
        }
        self.prev = computed;
        self.next_seq += 1;
        Ok(())
    }

    /// The balances the verified entries derive, per lot.
    pub fn balances(&self) -> BTreeMap<StockKey, Micrograms> {
        self.buckets.iter().map(|(k, b)| (k.clone(), b.balance())).collect()
    }

    /// Checks the end against the stored head (`seq`, `hash`); returns the number of entries.
    pub fn finish(self, head: Option<(i64, Hash)>) -> Result<i64, LedgerChainBreak> {
        let last = self.next_seq - 1;
        let (head_seq, head_hash) = head.unwrap_or((0, Hash::GENESIS));
        if head_seq > last {
            return Err(LedgerChainBreak::Truncated { last, head: head_seq });
        }
        if head_seq < last {
            return Err(LedgerChainBreak::HeadBehind { last, head: head_seq });
        }
        if head_hash != self.prev {
            return Err(LedgerChainBreak::HeadMismatch);
        }
        Ok(last)
    }
}

/// Verifies a whole chain held in memory; the first broken link, or the number of entries.
pub fn verify(
    location_id: &str,
    entries: &[StoredLedgerEntry],
    head: Option<(i64, Hash)>,
) -> Result<i64, LedgerChainBreak> {
    let mut v = LedgerChainVerifier::new(location_id);
    for e in entries {
        v.push(e)?;
    }
    v.finish(head)
}
