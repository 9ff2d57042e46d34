//! The Schedule III ledger's use cases (KAP-SPEC 9, issue 6): the registry, transactions,
//! counts and discrepancies, reports, and the draws a dosing session makes.
//!
//! Every write goes through a [`Writer`]: it takes the location's chain head (and so its lock)
//! first, folds each lot's entries into the domain's [`Bucket`], asks the bucket whether each new
//! entry may be appended, chains the accepted ones and writes them with their audit event in the
//! same transaction. A refusal names its field and writes nothing. Every read is audited.

pub mod discrepancies;
pub mod dosing;
pub mod registry;
pub mod reports;
pub mod transactions;
pub mod witness;

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use kapstone_domain::audit::{AuditAction, Hash, NewAuditEvent, Outcome};
use kapstone_domain::ids::{CsProductId, LocationId};
use kapstone_domain::ledger::chain::StoredLedgerEntry;
use kapstone_domain::ledger::{
    Bucket, CheckContext, CsProduct, LedgerEntry, LedgerSettings, LocationRegistration, Lot, LotNumber, Micrograms,
    Person, Refusal,
};
use kapstone_domain::{PatientId, UtcTs};
use kapstone_store::ledger as store;
use kapstone_store::{Db, Tx};
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// A domain refusal as the web layer's error: 422 with the rule's code and the field at fault.
pub fn refused(r: Refusal) -> AppError {
    AppError::Refused { code: r.code, field: Some(r.field), message: r.message }
}

fn corrupt(what: &str) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored controlled-substance {what} is invalid"))
}

/// The signed-in user as the ledger names them.
pub fn person(user: &CurrentUser) -> Person {
    Person { user: user.id, role: user.role, name: user.name.clone() }
}

/// A location of the user's clinic with its time zone.
#[derive(Debug, Clone)]
pub struct Place {
    pub id: Uuid,
    pub name: String,
    pub tz: TimeZone,
}

impl Place {
    /// The location's calendar date at `t`.
    pub fn date_of(&self, t: UtcTs) -> Date {
        crate::app::scheduling::to_jiff(t).to_zoned(self.tz.clone()).date()
    }
}

/// A location of the clinic; "not found" for another clinic's or an unknown id.
pub async fn place(state: &AppState, user: &CurrentUser, location: Uuid) -> Result<Place, AppError> {
    places(&state.db, user).await?.into_iter().find(|p| p.id == location).ok_or_else(|| {
        AppError::Invalid(kapstone_domain::FieldError::new("location", "no such location in this clinic"))
    })
}

pub async fn places(db: &Db, user: &CurrentUser) -> Result<Vec<Place>, AppError> {
    kapstone_store::scheduling::locations(db, user.clinic)
        .await?
        .into_iter()
        .map(|l| {
            let tz = TimeZone::get(&l.time_zone).map_err(|_| corrupt("location time zone"))?;
            Ok(Place { id: l.id, name: l.name, tz })
        })
        .collect()
}

/// A location's registration and ledger settings, as stored.
#[derive(Debug, Clone)]
pub struct Registered {
    pub registration: LocationRegistration,
    pub settings: LedgerSettings,
    pub version: i64,
    pub updated_at: UtcTs,
}

pub(crate) fn registered(row: &store::RegistrationRow) -> Result<Registered, AppError> {
    Ok(Registered {
        registration: serde_json::from_str(&row.body).map_err(|_| corrupt("registration"))?,
        settings: serde_json::from_str(&row.settings).map_err(|_| corrupt("settings"))?,
        version: row.version,
        updated_at: row.updated_at.0,
    })
}

pub(crate) fn product_of(row: &store::ProductRow) -> Result<CsProduct, AppError> {
    serde_json::from_str(&row.body).map_err(|_| corrupt("product"))
}

pub(crate) fn lot_of(row: &store::LotRow) -> Result<Lot, AppError> {
    Ok(Lot {
        product: CsProductId::from_uuid(row.product_id),
        number: LotNumber::parse("lot", &row.number).map_err(|_| corrupt("lot"))?,
        expiry: row.expiry.parse().map_err(|_| corrupt("lot expiry"))?,
    })
}

pub(crate) fn entry_of(s: &StoredLedgerEntry) -> Result<LedgerEntry, AppError> {
    s.entry().ok_or_else(|| corrupt("ledger entry"))
}

/// One lot as the writer holds it.
struct Held {
    product: CsProduct,
    lot: Lot,
    bucket: Bucket,
}

/// Appends entries to one location's chain inside a caller's transaction (so a dosing session's
/// draw commits with its administration event). Refusals leave the transaction unwritten: the
/// caller drops it.
pub struct Writer {
    clinic: Uuid,
    pub place: Place,
    pub registered: Registered,
    head: Option<(i64, Hash)>,
    /// The location's initial inventory exists: until it does, only counts may be recorded
    /// (21 CFR 1304.11(b): the inventory is taken on the day the location first dispenses).
    has_initial: bool,
    held: BTreeMap<(Uuid, String), Held>,
    chained: Vec<StoredLedgerEntry>,
    pub now: UtcTs,
    pub today: Date,
}

impl Writer {
    /// Takes the location's head. A location without a DEA registration has no ledger: the
    /// refusal names `location`.
    pub async fn start(tx: &mut Tx, user: &CurrentUser, place: Place) -> Result<Self, AppError> {
        let clinic = user.clinic.as_uuid();
        let head = store::lock_head(tx, place.id).await?;
        let Some(row) = store::registration_in(tx, clinic, place.id).await? else {
            return Err(AppError::Refused {
                code: "registration",
                field: Some("location"),
                message: format!(
                    "{} has no DEA registration recorded: an admin or prescriber adds it first",
                    place.name
                ),
            });
        };
        let registered = registered(&row)?;
        let has_initial = store::has_initial_inventory_in(tx, place.id).await?;
        let now = UtcTs::now();
        let today = place.date_of(now);
        Ok(Self {
            clinic,
            place,
            registered,
            head,
            has_initial,
            held: BTreeMap::new(),
            chained: Vec::new(),
            now,
            today,
        })
    }

    pub fn location(&self) -> LocationId {
        LocationId::from_uuid(self.place.id)
    }

    /// Loads a lot (its product, expiry and entries so far). Unknown product or lot: refused
    /// naming `product` or `lot`.
    pub async fn hold(&mut self, tx: &mut Tx, product: CsProductId, lot: &LotNumber) -> Result<(), AppError> {
        let key = (product.as_uuid(), lot.as_str().to_owned());
        if self.held.contains_key(&key) {
            return Ok(());
        }
        let Some(p) = store::product_in(tx, self.clinic, product.as_uuid()).await? else {
            return Err(AppError::Invalid(kapstone_domain::FieldError::new(
                "product",
                "no such product in this clinic",
            )));
        };
        let Some(l) = store::lot_in(tx, product.as_uuid(), lot.as_str()).await? else {
            return Err(AppError::Invalid(kapstone_domain::FieldError::new(
                "lot",
                format!("lot {lot} of this product is not in the registry: record its receipt first"),
            )));
        };
        let mut entries = Vec::new();
        for s in store::bucket_in(tx, self.place.id, product.as_uuid(), lot.as_str()).await? {
            entries.push(entry_of(&s)?);
        }
        self.held.insert(key, Held { product: product_of(&p)?, lot: lot_of(&l)?, bucket: Bucket::fold(&entries) });
        Ok(())
    }

    /// The lot's bucket as it stands (after [`Writer::hold`]).
    pub fn bucket(&self, product: CsProductId, lot: &LotNumber) -> Option<&Bucket> {
        self.held.get(&(product.as_uuid(), lot.as_str().to_owned())).map(|h| &h.bucket)
    }

    pub fn product(&self, product: CsProductId, lot: &LotNumber) -> Option<&CsProduct> {
        self.held.get(&(product.as_uuid(), lot.as_str().to_owned())).map(|h| &h.product)
    }

    pub fn lot(&self, product: CsProductId, lot: &LotNumber) -> Option<&Lot> {
        self.held.get(&(product.as_uuid(), lot.as_str().to_owned())).map(|h| &h.lot)
    }

    /// Checks `e` against its lot and, when accepted, chains it. Returns the balance change.
    pub async fn push(&mut self, tx: &mut Tx, e: LedgerEntry) -> Result<Micrograms, AppError> {
        if e.location.as_uuid() != self.place.id {
            return Err(AppError::Internal(anyhow::anyhow!("ledger entry for another location")));
        }
        if !self.has_initial && e.kind() != kapstone_domain::ledger::EntryKind::InventoryCount {
            return Err(AppError::Refused {
                code: "inventory",
                field: Some("location"),
                message: format!(
                    "take {}'s initial inventory first (a zero inventory if nothing is on hand yet): it comes before \
                     the first receipt or dose",
                    self.place.name
                ),
            });
        }
        self.hold(tx, e.product, &e.lot).await?;
        let key = (e.product.as_uuid(), e.lot.as_str().to_owned());
        let held = self.held.get_mut(&key).ok_or_else(|| corrupt("lot"))?;
        let ctx = CheckContext {
            product: &held.product,
            lot: &held.lot,
            today: self.today,
            now: self.now,
            settings: &self.registered.settings,
        };
        let change = held.bucket.check(&e, &ctx).map_err(refused)?;
        held.bucket.apply(&e);
        let prev = self.chained.last().map_or(Ok(self.head), |s| {
            Hash::from_hex(&s.hash).map(|h| Some((s.seq, h))).ok_or_else(|| corrupt("hash"))
        })?;
        let stored = StoredLedgerEntry::chain(&e, change, prev).map_err(|e| AppError::Internal(e.into()))?;
        self.chained.push(stored);
        Ok(change)
    }

    /// Writes the accepted entries and moves the head; the audit events are the caller's.
    pub async fn write(self, tx: &mut Tx) -> Result<Vec<StoredLedgerEntry>, AppError> {
        store::append(tx, self.clinic, self.registered.version, &self.chained).await?;
        Ok(self.chained)
    }
}

/// The audit event of entries appended: sequence numbers, kinds, amounts and the user ids of any
/// witnesses who authenticated for them; never a name.
pub fn recorded_event(user: &CurrentUser, location: Uuid, stored: &[StoredLedgerEntry]) -> NewAuditEvent {
    let mut e = user.event(AuditAction::LedgerRecorded, "cs_location", Outcome::Success);
    e.entity_id = Some(location.to_string());
    e.patient_id = stored.iter().find_map(|s| s.patient_id.as_deref()?.parse().ok().map(PatientId::from_uuid));
    let witnesses = |s: &StoredLedgerEntry| -> String {
        let ids: Vec<String> = match s.entry().map(|x| x.detail) {
            Some(kapstone_domain::ledger::EntryDetail::Waste(w)) => {
                w.witness.iter().map(|w| w.user.to_string()).collect()
            }
            Some(kapstone_domain::ledger::EntryDetail::Destruction(d)) => {
                d.witnesses.iter().map(|w| w.user.to_string()).collect()
            }
            _ => Vec::new(),
        };
        if ids.is_empty() { String::new() } else { format!(" witnessed by user {}", ids.join(" and user ")) }
    };
    let parts: Vec<String> =
        stored.iter().map(|s| format!("#{} {} {} µg{}", s.seq, s.kind, s.change_ug, witnesses(s))).collect();
    e.reason = Some(parts.join("; "));
    e
}

/// Audits a read of the ledger (batched, like every read of patient data).
pub async fn audit_read(
    state: &AppState,
    user: &CurrentUser,
    location: Option<Uuid>,
    what: String,
) -> Result<(), AppError> {
    state.read_audit.record(read_event(user, location, what)).await?;
    Ok(())
}

/// The audit event of a read of the ledger ([`audit_read`]).
pub fn read_event(user: &CurrentUser, location: Option<Uuid>, what: String) -> kapstone_domain::audit::NewAuditEvent {
    let mut e = user.event(AuditAction::LedgerRead, "cs_location", Outcome::Success);
    e.entity_id = location.map(|l| l.to_string());
    e.reason = Some(what);
    e
}

/// Parses an optional RFC 3339 time given for when something actually happened; `None` is now.
pub fn occurred_at(raw: Option<&str>, field: &'static str) -> Result<Option<UtcTs>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<jiff::Timestamp>().map(|t| Some(crate::app::scheduling::from_jiff(t))).map_err(|_| {
            AppError::Invalid(kapstone_domain::FieldError::new(
                field,
                "give a date and time with its UTC offset (RFC 3339)",
            ))
        }),
    }
}
