//! The controlled-substance ledger's storage (KAP-SPEC 9): registrations, products, lots, the
//! hash-chained entries per location, inventories and discrepancies.
//!
//! Nothing here decides anything: the use cases fold a lot's entries into the domain's
//! [`kapstone_domain::ledger::Bucket`], ask it whether an entry may be appended, and hand this
//! module the chained entry ([`StoredLedgerEntry`]). Entries are never updated or deleted
//! (triggers refuse it); a location's head row is moved first in the writing transaction, which
//! takes its lock, so two writers cannot fork a chain.

use kapstone_domain::UtcTs;
use kapstone_domain::audit::Hash;
use kapstone_domain::ledger::chain::StoredLedgerEntry;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

// ---------------------------------------------------------------------------------------------
// Registration and settings
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct RegistrationRow {
    pub location_id: Uuid,
    /// JSON of `LocationRegistration`.
    pub body: String,
    /// JSON of `LedgerSettings`.
    pub settings: String,
    pub version: i64,
    pub updated_at: DbTs,
}

/// Creates or replaces a location's registration and settings; returns the new settings version.
pub async fn save_registration(
    tx: &mut Tx,
    clinic: Uuid,
    location: Uuid,
    body: &str,
    settings: &str,
    by: Uuid,
    at: UtcTs,
) -> Result<i64> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO cs_registrations (location_id, clinic_id, body, settings, version, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT (location_id) DO UPDATE SET body = excluded.body, \
             settings = excluded.settings, version = cs_registrations.version + 1, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by WHERE cs_registrations.clinic_id = excluded.clinic_id RETURNING version",
        )
        .bind(location)
        .bind(clinic)
        .bind(body)
        .bind(settings)
        .bind(DbTs(at))
        .bind(by)
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::Refused("the location belongs to another clinic".into()))?
    }))
}

const REGISTRATION: &str = "SELECT location_id, body, settings, version, updated_at FROM cs_registrations";

pub async fn registration(db: &Db, clinic: Uuid, location: Uuid) -> Result<Option<RegistrationRow>> {
    let sql = format!("{REGISTRATION} WHERE clinic_id = $1 AND location_id = $2");
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(location).fetch_optional(c).await?
    }))
}

/// The registration as the writing transaction sees it (the settings an entry is checked under).
pub async fn registration_in(tx: &mut Tx, clinic: Uuid, location: Uuid) -> Result<Option<RegistrationRow>> {
    let sql = format!("{REGISTRATION} WHERE clinic_id = $1 AND location_id = $2");
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(location).fetch_optional(c).await?
    }))
}

pub async fn registrations(db: &Db, clinic: Uuid) -> Result<Vec<RegistrationRow>> {
    let sql = format!("{REGISTRATION} WHERE clinic_id = $1 ORDER BY location_id");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).fetch_all(c).await?))
}

// ---------------------------------------------------------------------------------------------
// Products and lots
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ProductRow {
    pub id: Uuid,
    /// JSON of `CsProduct`.
    pub body: String,
}

pub async fn insert_product(tx: &mut Tx, clinic: Uuid, id: Uuid, ndc: &str, name: &str, body: &str) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO cs_products (id, clinic_id, ndc, name, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(clinic)
        .bind(ndc)
        .bind(name)
        .bind(body)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "ndc"))?;
    });
    Ok(())
}

pub async fn products(db: &Db, clinic: Uuid) -> Result<Vec<ProductRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as("SELECT id, body FROM cs_products WHERE clinic_id = $1 ORDER BY name, id")
            .bind(clinic)
            .fetch_all(c)
            .await?
    }))
}

pub async fn product_in(tx: &mut Tx, clinic: Uuid, id: Uuid) -> Result<Option<ProductRow>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as("SELECT id, body FROM cs_products WHERE clinic_id = $1 AND id = $2")
            .bind(clinic)
            .bind(id)
            .fetch_optional(c)
            .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct LotRow {
    pub product_id: Uuid,
    pub number: String,
    /// ISO date.
    pub expiry: String,
}

/// Adds a lot; a lot number already known for the product with the same expiry is accepted as
/// is, with another expiry refused (`Conflict("lot")`).
pub async fn ensure_lot(tx: &mut Tx, product: Uuid, number: &str, expiry: &str) -> Result<()> {
    let existing: Option<String> = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT expiry FROM cs_lots WHERE product_id = $1 AND number = $2")
            .bind(product)
            .bind(number)
            .fetch_optional(&mut *c)
            .await?
    });
    match existing {
        Some(e) if e == expiry => Ok(()),
        Some(_) => Err(StoreError::Conflict("lot")),
        None => {
            // Two receipts of a new lot at once (at two locations) both get here: the second
            // insert does nothing, and the lot as stored decides.
            on_tx!(tx, |c| {
                sqlx::query(
                    "INSERT INTO cs_lots (product_id, number, expiry, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (product_id, number) DO NOTHING",
                )
                .bind(product)
                .bind(number)
                .bind(expiry)
                .bind(DbTs(UtcTs::now()))
                .execute(&mut *c)
                .await?;
            });
            let stored: Option<String> = on_tx!(tx, |c| {
                sqlx::query_scalar("SELECT expiry FROM cs_lots WHERE product_id = $1 AND number = $2")
                    .bind(product)
                    .bind(number)
                    .fetch_optional(c)
                    .await?
            });
            if stored.as_deref() == Some(expiry) { Ok(()) } else { Err(StoreError::Conflict("lot")) }
        }
    }
}

/// Every lot of the clinic's products.
pub async fn lots(db: &Db, clinic: Uuid) -> Result<Vec<LotRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT l.product_id, l.number, l.expiry FROM cs_lots l JOIN cs_products p ON p.id = l.product_id \
             WHERE p.clinic_id = $1 ORDER BY l.expiry, l.number",
        )
        .bind(clinic)
        .fetch_all(c)
        .await?
    }))
}

pub async fn lot_in(tx: &mut Tx, product: Uuid, number: &str) -> Result<Option<LotRow>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as("SELECT product_id, number, expiry FROM cs_lots WHERE product_id = $1 AND number = $2")
            .bind(product)
            .bind(number)
            .fetch_optional(c)
            .await?
    }))
}

// ---------------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
struct EntryRow {
    seq: i64,
    location_id: Uuid,
    entry_id: Uuid,
    product_id: Uuid,
    lot: String,
    kind: String,
    occurred_at: DbTs,
    recorded_at: DbTs,
    recorded_by: Uuid,
    session_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    change_ug: i64,
    body: String,
    prev_hash: String,
    hash: String,
}

impl From<EntryRow> for StoredLedgerEntry {
    fn from(r: EntryRow) -> Self {
        Self {
            seq: r.seq,
            location_id: r.location_id.to_string(),
            entry_id: r.entry_id.to_string(),
            product_id: r.product_id.to_string(),
            lot: r.lot,
            kind: r.kind,
            occurred_at: r.occurred_at.0,
            recorded_at: r.recorded_at.0,
            recorded_by: r.recorded_by.to_string(),
            session_id: r.session_id.map(|s| s.to_string()),
            patient_id: r.patient_id.map(|p| p.to_string()),
            change_ug: r.change_ug,
            body: r.body,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

const ENTRY_COLUMNS: &str = "SELECT seq, location_id, entry_id, product_id, lot, kind, occurred_at, recorded_at, \
     recorded_by, session_id, patient_id, change_ug, body, prev_hash, hash FROM cs_ledger_entries";

fn uuid_of(field: &str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("ledger entry {field}")))
}

/// Takes the location's chain head (and its lock) for a write: `None` before its first entry.
/// Call it first in the transaction, before reading the entries the new ones are checked
/// against, so nothing can be appended in between.
pub async fn lock_head(tx: &mut Tx, location: Uuid) -> Result<Option<(i64, Hash)>> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO cs_ledger_heads (location_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (location_id) DO NOTHING",
        )
        .bind(location)
        .bind(Hash::GENESIS.to_hex())
        .execute(&mut *c)
        .await?;
    });
    // A no-op update takes the row lock on PostgreSQL (SQLite's BEGIN IMMEDIATE already has the
    // database's write lock).
    let (seq, hash): (i64, String) = on_tx!(tx, |c| {
        sqlx::query_as("UPDATE cs_ledger_heads SET seq = seq WHERE location_id = $1 RETURNING seq, hash")
            .bind(location)
            .fetch_one(c)
            .await?
    });
    if seq == 0 {
        return Ok(None);
    }
    let hash = Hash::from_hex(&hash).ok_or_else(|| StoreError::Corrupt("ledger head hash".into()))?;
    Ok(Some((seq, hash)))
}

/// Appends chained entries (in order, continuing from the head [`lock_head`] returned) and moves
/// the head to the last.
pub async fn append(tx: &mut Tx, clinic: Uuid, settings_version: i64, entries: &[StoredLedgerEntry]) -> Result<()> {
    let Some(last) = entries.last() else { return Ok(()) };
    for e in entries {
        let location = uuid_of("location", &e.location_id)?;
        let session = e.session_id.as_deref().map(|s| uuid_of("session", s)).transpose()?;
        let patient = e.patient_id.as_deref().map(|s| uuid_of("patient", s)).transpose()?;
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO cs_ledger_entries (location_id, seq, entry_id, clinic_id, product_id, lot, kind, \
                 occurred_at, recorded_at, recorded_by, session_id, patient_id, change_ug, settings_version, body, \
                 prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(location)
            .bind(e.seq)
            .bind(uuid_of("entry", &e.entry_id)?)
            .bind(clinic)
            .bind(uuid_of("product", &e.product_id)?)
            .bind(&e.lot)
            .bind(&e.kind)
            .bind(DbTs(e.occurred_at))
            .bind(DbTs(e.recorded_at))
            .bind(uuid_of("recorded_by", &e.recorded_by)?)
            .bind(session)
            .bind(patient)
            .bind(e.change_ug)
            .bind(settings_version)
            .bind(&e.body)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .execute(c)
            .await?;
        });
    }
    let location = uuid_of("location", &last.location_id)?;
    on_tx!(tx, |c| {
        sqlx::query("UPDATE cs_ledger_heads SET seq = $1, hash = $2 WHERE location_id = $3")
            .bind(last.seq)
            .bind(&last.hash)
            .bind(location)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// One lot's entries in order, read in the writing transaction (after [`lock_head`]).
pub async fn bucket_in(tx: &mut Tx, location: Uuid, product: Uuid, lot: &str) -> Result<Vec<StoredLedgerEntry>> {
    let sql = format!("{ENTRY_COLUMNS} WHERE location_id = $1 AND product_id = $2 AND lot = $3 ORDER BY seq");
    let rows: Vec<EntryRow> = on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(location).bind(product).bind(lot).fetch_all(c).await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The lots a dosing session drew from (its draws and administrations), in the transaction.
pub async fn lots_of_session_in(tx: &mut Tx, session: Uuid) -> Result<Vec<(Uuid, Uuid, String)>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT DISTINCT location_id, product_id, lot FROM cs_ledger_entries WHERE session_id = $1 \
             ORDER BY location_id, product_id, lot",
        )
        .bind(session)
        .fetch_all(c)
        .await?
    }))
}

/// Entries of a dosing session (draws and administrations), oldest first.
pub async fn of_session(db: &Db, clinic: Uuid, session: Uuid) -> Result<Vec<StoredLedgerEntry>> {
    let sql = format!("{ENTRY_COLUMNS} WHERE clinic_id = $1 AND session_id = $2 ORDER BY seq");
    let rows: Vec<EntryRow> = on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(session).fetch_all(c).await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Filters for reading a location's ledger; the date range is on `occurred_at`.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub from: Option<UtcTs>,
    pub to: Option<UtcTs>,
    pub product: Option<Uuid>,
    pub lot: Option<String>,
    pub patient: Option<Uuid>,
    pub kind: Option<String>,
    /// Keyset paging in chain order: entries with `seq` above this.
    pub after_seq: Option<i64>,
}

/// A page of a patient's entries (`p.filter.patient`, always set) at every location of the clinic,
/// oldest first by when they happened after `p.after`, in the window `[from, to)` when set (the
/// dispensing log). The key's id is the entry's `entry_id`.
pub async fn patient_entries_page(db: &Db, p: &crate::keyset::Page<'_>) -> Result<Vec<StoredLedgerEntry>> {
    let sql = format!(
        "{ENTRY_COLUMNS} WHERE clinic_id = $1 AND patient_id = $2 \
         AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4) \
         AND occurred_at >= $5 AND (occurred_at > $5 OR entry_id > $6) ORDER BY occurred_at, entry_id LIMIT $7"
    );
    let rows: Vec<EntryRow> = crate::keyset::fetch(db, sql, p, None).await?;
    Ok(rows.into_iter().map(StoredLedgerEntry::from).collect())
}

/// A bound value of a query whose filters are chosen at run time.
enum Param {
    Uuid(Uuid),
    Ts(DbTs),
    Text(String),
    Int(i64),
}

/// A location's entries matching `f` in chain order, at most `limit`. Only the filters given
/// are in the SQL (no `$n IS NULL OR ...`), so the engine can use the lot, time and patient
/// indexes: on a 100,000-entry ledger that is the difference between milliseconds and seconds.
///
/// A date range also bounds `seq` by the first and last entry of the range (read from the index
/// on location, time and `seq` alone), so the entries are read in chain order from the first one
/// in range. Without it PostgreSQL walked the chain from its start and filtered: the last 30 days
/// of a 300,000-entry ledger took 480 ms instead of a few. The bounds are `MIN(b.seq + 0)` and
/// `MAX(b.seq + 0)`, not `MIN(b.seq)`: on the bare column PostgreSQL takes its min/max shortcut
/// and walks the primary key `(location_id, seq)` from the start of the chain (backwards from its
/// end for the `MAX`), testing each entry's time until one is in range, which is most of the chain
/// when the range is recent and the entries were recorded in time order; on an expression both
/// engines read the range from the `(location_id, occurred_at, seq)` index.
pub async fn entries(
    db: &Db,
    clinic: Uuid,
    location: Uuid,
    f: &EntryFilter,
    limit: i64,
) -> Result<Vec<StoredLedgerEntry>> {
    let mut sql = format!("{ENTRY_COLUMNS} WHERE clinic_id = $1 AND location_id = $2");
    let mut params = vec![Param::Uuid(clinic), Param::Uuid(location)];
    let mut add = |clause: &str, p: Param| {
        params.push(p);
        sql.push_str(&format!(" AND {clause} ${}", params.len()));
    };
    if let Some(t) = f.from {
        add("occurred_at >=", Param::Ts(DbTs(t)));
    }
    if let Some(t) = f.to {
        add("occurred_at <", Param::Ts(DbTs(t)));
    }
    if let Some(p) = f.product {
        add("product_id =", Param::Uuid(p));
    }
    if let Some(l) = &f.lot {
        add("lot =", Param::Text(l.clone()));
    }
    if let Some(p) = f.patient {
        add("patient_id =", Param::Uuid(p));
    }
    if let Some(k) = &f.kind {
        add("kind =", Param::Text(k.clone()));
    }
    if let Some(a) = f.after_seq {
        add("seq >", Param::Int(a));
    }
    if f.from.is_some() || f.to.is_some() {
        // The same time filters: they were the first added, $3 (and $4).
        let mut range = String::from("b.location_id = $2");
        let mut n = 2;
        if f.from.is_some() {
            n += 1;
            range.push_str(&format!(" AND b.occurred_at >= ${n}"));
        }
        if f.to.is_some() {
            n += 1;
            range.push_str(&format!(" AND b.occurred_at < ${n}"));
        }
        sql.push_str(&format!(
            " AND seq >= (SELECT MIN(b.seq + 0) FROM cs_ledger_entries b WHERE {range}) \
             AND seq <= (SELECT MAX(b.seq + 0) FROM cs_ledger_entries b WHERE {range})"
        ));
    }
    params.push(Param::Int(limit));
    // With a date range, `seq + 0`: the entries of the range are read from the time index and the
    // first `limit` of them sorted by `seq`, on both engines. Ordered by the bare column, SQLite
    // walked the `(location_id, seq)` index from the range's first entry towards its last, reading
    // each entry to test its time, and when entries are not recorded in time order (back-dated
    // ones, or the data generator, which writes the ledger patient by patient) that span is most of
    // the chain: seq 8 to 299,717 for the last 30 days of the 100,000-patient clinic, whose 1,001
    // first entries took 190-810 ms this way against 21-50 ms from the time index (bundled SQLite
    // 3.51, shared machine). Same order either way: `seq` is unique within a location.
    let order = if f.from.is_some() || f.to.is_some() { "seq + 0" } else { "seq" };
    sql.push_str(&format!(" ORDER BY {order} LIMIT ${}", params.len()));
    let rows: Vec<EntryRow> = on_read!(db, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for p in &params {
            q = match p {
                Param::Uuid(u) => q.bind(*u),
                Param::Ts(t) => q.bind(*t),
                Param::Text(t) => q.bind(t.clone()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(c).await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

/// A location's balance per product and lot: the sum of the changes its entries made (each one
/// re-derived from the entries by `kapstone ledger verify`).
pub async fn balances(db: &Db, clinic: Uuid, location: Uuid) -> Result<Vec<(Uuid, String, i64)>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT product_id, lot, CAST(SUM(change_ug) AS BIGINT) FROM cs_ledger_entries \
             WHERE clinic_id = $1 AND location_id = $2 GROUP BY product_id, lot ORDER BY product_id, lot",
        )
        .bind(clinic)
        .bind(location)
        .fetch_all(c)
        .await?
    }))
}

/// A location's balances as the writing transaction sees them.
pub async fn balances_in(tx: &mut Tx, clinic: Uuid, location: Uuid) -> Result<Vec<(Uuid, String, i64)>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT product_id, lot, CAST(SUM(change_ug) AS BIGINT) FROM cs_ledger_entries \
             WHERE clinic_id = $1 AND location_id = $2 GROUP BY product_id, lot ORDER BY product_id, lot",
        )
        .bind(clinic)
        .bind(location)
        .fetch_all(c)
        .await?
    }))
}

/// Does the location have its initial inventory (read in the writing transaction)?
pub async fn has_initial_inventory_in(tx: &mut Tx, location: Uuid) -> Result<bool> {
    let n: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM cs_inventories WHERE location_id = $1 AND kind = 'initial'")
            .bind(location)
            .fetch_one(c)
            .await?
    });
    Ok(n > 0)
}

/// Every location that has a chain, with its head.
pub async fn heads(db: &Db) -> Result<Vec<(Uuid, i64, Hash)>> {
    let rows: Vec<(Uuid, i64, String)> = on_read!(db, |c| {
        sqlx::query_as("SELECT location_id, seq, hash FROM cs_ledger_heads ORDER BY location_id").fetch_all(c).await?
    });
    rows.into_iter()
        .map(|(l, s, h)| {
            Hash::from_hex(&h).map(|h| (l, s, h)).ok_or_else(|| StoreError::Corrupt("ledger head hash".into()))
        })
        .collect()
}

/// Locations with entries but no head row (a deleted head must not hide a chain).
pub async fn locations_with_entries(db: &Db) -> Result<Vec<Uuid>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT DISTINCT location_id FROM cs_ledger_entries ORDER BY location_id")
            .fetch_all(c)
            .await?
    }))
}

/// A batch of a location's chain in `seq` order, for the verifier.
pub async fn chain_batch(db: &Db, location: Uuid, after_seq: i64, limit: i64) -> Result<Vec<StoredLedgerEntry>> {
    let sql = format!("{ENTRY_COLUMNS} WHERE location_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
    let rows: Vec<EntryRow> = on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(location).bind(after_seq).bind(limit).fetch_all(c).await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

// ---------------------------------------------------------------------------------------------
// Inventories
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct InventoryRow {
    pub id: Uuid,
    pub location_id: Uuid,
    pub kind: String,
    pub taken_at: String,
    pub taken_on: String,
    pub occurred_at: DbTs,
    pub taken_by: Uuid,
    pub lines: i64,
}

pub struct NewInventory<'a> {
    pub id: Uuid,
    pub clinic: Uuid,
    pub location: Uuid,
    pub kind: &'a str,
    pub taken_at: &'a str,
    pub taken_on: &'a str,
    pub occurred_at: UtcTs,
    pub taken_by: Uuid,
    pub lines: i64,
}

pub async fn insert_inventory(tx: &mut Tx, i: &NewInventory<'_>) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO cs_inventories (id, clinic_id, location_id, kind, taken_at, taken_on, occurred_at, taken_by, \
             lines) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(i.id)
        .bind(i.clinic)
        .bind(i.location)
        .bind(i.kind)
        .bind(i.taken_at)
        .bind(i.taken_on)
        .bind(DbTs(i.occurred_at))
        .bind(i.taken_by)
        .bind(i.lines)
        .execute(c)
        .await?;
    });
    Ok(())
}

const INVENTORY_COLUMNS: &str =
    "SELECT id, location_id, kind, taken_at, taken_on, occurred_at, taken_by, lines FROM cs_inventories";

/// A location's inventories, newest first.
pub async fn inventories(db: &Db, clinic: Uuid, location: Uuid) -> Result<Vec<InventoryRow>> {
    let sql = format!("{INVENTORY_COLUMNS} WHERE clinic_id = $1 AND location_id = $2 ORDER BY occurred_at DESC, id");
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(location).fetch_all(c).await?
    }))
}

/// The date of the location's latest initial or biennial inventory, in the transaction.
pub async fn last_full_inventory_in(tx: &mut Tx, location: Uuid) -> Result<Option<String>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT MAX(taken_on) FROM cs_inventories WHERE location_id = $1 AND kind IN ('initial', 'biennial')",
        )
        .bind(location)
        .fetch_one(c)
        .await?
    }))
}

// ---------------------------------------------------------------------------------------------
// Discrepancies
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct DiscrepancyRow {
    pub id: Uuid,
    pub location_id: Uuid,
    pub found_on: String,
    pub opened_at: DbTs,
    pub closed_at: Option<DbTs>,
}

pub async fn insert_discrepancy(
    tx: &mut Tx,
    id: Uuid,
    clinic: Uuid,
    location: Uuid,
    found_on: &str,
    at: UtcTs,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO cs_discrepancies (id, clinic_id, location_id, found_on, opened_at, closed_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(id)
        .bind(clinic)
        .bind(location)
        .bind(found_on)
        .bind(DbTs(at))
        .execute(c)
        .await?;
    });
    Ok(())
}

pub async fn append_discrepancy_event(
    tx: &mut Tx,
    discrepancy: Uuid,
    seq: i64,
    at: UtcTs,
    by: Uuid,
    body: &str,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO cs_discrepancy_events (discrepancy_id, seq, at, by_user, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(discrepancy)
        .bind(seq)
        .bind(DbTs(at))
        .bind(by)
        .bind(body)
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "discrepancy event"))?;
    });
    Ok(())
}

pub async fn close_discrepancy(tx: &mut Tx, id: Uuid, at: UtcTs) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE cs_discrepancies SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL")
            .bind(DbTs(at))
            .bind(id)
            .execute(c)
            .await?;
    });
    Ok(())
}

const DISCREPANCY_COLUMNS: &str = "SELECT id, location_id, found_on, opened_at, closed_at FROM cs_discrepancies";

/// The clinic's discrepancies, open ones first, newest first within each.
pub async fn discrepancies(db: &Db, clinic: Uuid, open_only: bool) -> Result<Vec<DiscrepancyRow>> {
    let sql = format!(
        "{DISCREPANCY_COLUMNS} WHERE clinic_id = $1 AND ($2 = 0 OR closed_at IS NULL) \
         ORDER BY CASE WHEN closed_at IS NULL THEN 0 ELSE 1 END, opened_at DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(i64::from(open_only)).fetch_all(c).await?
    }))
}

/// One discrepancy with its events' JSON bodies in order, locked for a write in the transaction.
pub async fn discrepancy_in(tx: &mut Tx, clinic: Uuid, id: Uuid) -> Result<Option<(DiscrepancyRow, Vec<String>)>> {
    let sql = format!("{DISCREPANCY_COLUMNS} WHERE clinic_id = $1 AND id = $2");
    // The no-op update takes the row lock on PostgreSQL, so two events cannot both be "next".
    let touched = on_tx!(tx, |c| {
        sqlx::query("UPDATE cs_discrepancies SET found_on = found_on WHERE clinic_id = $1 AND id = $2")
            .bind(clinic)
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    if touched == 0 {
        return Ok(None);
    }
    let row: Option<DiscrepancyRow> = on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(id).fetch_optional(c).await?
    });
    let Some(row) = row else { return Ok(None) };
    let bodies: Vec<String> = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT body FROM cs_discrepancy_events WHERE discrepancy_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(c)
            .await?
    });
    Ok(Some((row, bodies)))
}

/// One discrepancy's events' JSON bodies in order.
pub async fn discrepancy_events(db: &Db, id: Uuid) -> Result<Vec<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT body FROM cs_discrepancy_events WHERE discrepancy_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(c)
            .await?
    }))
}

/// One entry of the clinic's ledgers by its id.
pub async fn entry_by_id(db: &Db, clinic: Uuid, entry: Uuid) -> Result<Option<StoredLedgerEntry>> {
    let sql = format!("{ENTRY_COLUMNS} WHERE clinic_id = $1 AND entry_id = $2");
    let row: Option<EntryRow> = on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(entry).fetch_optional(c).await?
    });
    Ok(row.map(Into::into))
}

/// Verifies every location's chain (in batches, so memory stays flat): the number of entries
/// per location, or the first location whose chain is broken and where.
pub async fn verify(
    db: &Db,
) -> Result<std::result::Result<Vec<(Uuid, i64)>, (Uuid, kapstone_domain::ledger::chain::LedgerChainBreak)>> {
    use kapstone_domain::ledger::chain::LedgerChainVerifier;
    const BATCH: i64 = 20_000;
    // Locations with entries are read before the heads: a head is written with its location's
    // first entries, so every location listed has its head by the time the heads are read, and a
    // location without one has lost it. Entries appended after the heads were read (the clinic
    // keeps working during a verify) are beyond the head's seq and are left to the next run.
    let with_entries = locations_with_entries(db).await?;
    let heads = heads(db).await?;
    let mut locations: Vec<Uuid> = heads.iter().map(|h| h.0).collect();
    for l in with_entries {
        if !locations.contains(&l) {
            locations.push(l);
        }
    }
    let mut out = Vec::new();
    for location in locations {
        let head = heads.iter().find(|h| h.0 == location).map(|h| (h.1, h.2)).filter(|h| h.0 > 0);
        let mut v = LedgerChainVerifier::new(location.to_string());
        let mut after = 0;
        let upto = head.map_or(i64::MAX, |h| h.0);
        loop {
            let mut batch = chain_batch(db, location, after, BATCH).await?;
            batch.retain(|e| e.seq <= upto);
            let Some(last) = batch.last().map(|e| e.seq) else { break };
            for e in &batch {
                if let Err(brk) = v.push(e) {
                    return Ok(Err((location, brk)));
                }
            }
            after = last;
        }
        match v.finish(head) {
            Ok(n) => out.push((location, n)),
            Err(brk) => return Ok(Err((location, brk))),
        }
    }
    Ok(Ok(out))
}
