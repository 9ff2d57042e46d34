//! The ledger's hash chain: one chain per location, built like the audit log's
//! ([`crate::audit`]): `hash = SHA-256(prev_hash || length-prefixed fields)`, `seq` without gaps,
//! and a head per location kept by the store, so an edited, re-ordered, deleted or truncated entry
//! is found (`kapstone ledger verify`).
//!
//! The entry itself is hashed as the JSON text the store keeps (`body`), never re-serialised: the
//! verifier hashes exactly the stored bytes, so a store must keep the text as written (a `TEXT`
//! column, not PostgreSQL `jsonb`, which reorders keys). The columns a store copies out of the body
//! for its indexes (product, lot, kind, times) are hashed too, and the verifier checks that they
//! still agree with the body, so a report filtered on a column cannot be misled by an edited column.

use sha2::{Digest, Sha256};

use super::entry::LedgerEntry;
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
    /// The JSON of the [`LedgerEntry`].
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredLedgerEntry {
    /// Places `entry` after `prev` (the location's head; `None` for its first entry).
    pub fn chain(entry: &LedgerEntry, prev: Option<(i64, Hash)>) -> Result<Self, serde_json::Error> {
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
            self.seq.to_string().as_str(),
            &self.location_id,
            &self.entry_id,
            &self.product_id,
            &self.lot,
            &self.kind,
            &self.occurred_at.unix_micros().to_string(),
            &self.recorded_at.unix_micros().to_string(),
            &self.recorded_by,
            &self.body,
        ] {
            hash_field(&mut h, Some(v));
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
}

impl LedgerChainVerifier {
    pub fn new(location_id: impl Into<String>) -> Self {
        Self { location_id: location_id.into(), next_seq: 1, prev: Hash::GENESIS }
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
        self.prev = computed;
        self.next_seq += 1;
        Ok(())
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
