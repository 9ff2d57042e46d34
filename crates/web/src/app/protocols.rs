//! The clinic's dosing protocols: the bundled files (content/protocols) overlaid with the
//! versions its medical director has saved. A change is a new version, validated by the domain
//! (label values cannot be set below the label), stored append-only and audited; each session
//! records the version it ran under.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::dose::{DoseCalculation, DoseRequest};
use kapstone_domain::protocol::{Protocol, ProtocolError, ProtocolSet, form, parse_version};
use kapstone_domain::{ClinicId, FieldError, Role};
use kapstone_store::dosing as store;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn content_error(e: ProtocolError) -> AppError {
    AppError::Internal(anyhow::anyhow!("protocol content: {e}"))
}

/// A protocol refused on edit: the message names the JSON path of the offending value.
fn refused(e: ProtocolError) -> AppError {
    let path = if e.path.is_empty() { "protocol".to_owned() } else { e.path.clone() };
    AppError::Invalid(FieldError::new("definition", format!("{path}: {}", e.message)))
}

/// The bundled protocols (compiled in), parsed once: every session write and view reads them.
fn bundled() -> Result<&'static ProtocolSet, AppError> {
    static SET: std::sync::OnceLock<Result<ProtocolSet, ProtocolError>> = std::sync::OnceLock::new();
    SET.get_or_init(ProtocolSet::bundled).as_ref().map_err(|e| content_error(e.clone()))
}

/// The protocols in force at the clinic: for each route the latest version.
pub async fn current(state: &AppState, clinic: ClinicId) -> Result<ProtocolSet, AppError> {
    let mut set = bundled()?.clone();
    let mut stored = store::protocol_versions(&state.db, clinic).await?;
    // Oldest version first, so each revision follows the one before it.
    stored.sort_by_key(|r| (r.protocol_id.clone(), parse_version(&r.version)));
    for row in stored {
        let p = Protocol::parse(&row.definition).map_err(content_error)?;
        let newer = set.find(&p.id).is_some_and(|cur| parse_version(&p.version) > parse_version(&cur.version));
        if newer {
            set.revise(p).map_err(content_error)?;
        }
    }
    Ok(set)
}

/// The exact version a session ran under (bundled or saved by the clinic).
pub async fn version(state: &AppState, clinic: ClinicId, id: &str, version: &str) -> Result<Protocol, AppError> {
    if let Some(p) = bundled()?.find(id).filter(|p| p.version == version) {
        return Ok(p.clone());
    }
    let row = store::protocol_version(&state.db, clinic, id, version).await?.ok_or(AppError::NotFound)?;
    Protocol::parse(&row.definition).map_err(content_error)
}

/// (version, reason, saved at) of each saved version of a protocol, newest first.
pub async fn history(state: &AppState, clinic: ClinicId, id: &str) -> Result<Vec<(String, String, String)>, AppError> {
    let mut rows: Vec<_> =
        store::protocol_versions(&state.db, clinic).await?.into_iter().filter(|r| r.protocol_id == id).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(parse_version(&r.version)));
    Ok(rows.into_iter().map(|r| (r.version, r.reason, r.created_at.0.to_string())).collect())
}

/// May this account change protocols? A prescriber holding the medical-director permission.
pub async fn is_medical_director(state: &AppState, user: &CurrentUser) -> Result<bool, AppError> {
    Ok(user.role == Role::Prescriber && store::is_medical_director(&state.db, user.id).await?)
}

/// Grants or withdraws the medical-director permission (admins); only a prescriber can hold it.
pub async fn set_medical_director(
    state: &AppState,
    admin: &CurrentUser,
    user: kapstone_domain::UserId,
    on: bool,
) -> Result<(), AppError> {
    let row = kapstone_store::users::get(&state.db, user)
        .await?
        .filter(|u| u.clinic() == admin.clinic)
        .ok_or(AppError::NotFound)?;
    if on && row.role != Role::Prescriber.as_str() {
        return Err(AppError::Invalid(FieldError::new(
            "medical_director",
            "only a prescriber can hold the medical-director permission",
        )));
    }
    let mut tx = state.db.begin().await?;
    store::set_medical_director(&mut tx, user, on).await?;
    let mut e = admin.event(AuditAction::UserUpdated, "user", Outcome::Success);
    e.entity_id = Some(user.to_string());
    e.reason = Some(if on { "medical director granted" } else { "medical director withdrawn" }.into());
    kapstone_store::audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

fn checked_reason(reason: &str) -> Result<&str, AppError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::Invalid(FieldError::new("reason", "say why the protocol changes")));
    }
    if reason.chars().count() > 1000 {
        return Err(AppError::Invalid(FieldError::new("reason", "at most 1000 characters")));
    }
    Ok(reason)
}

/// Saves a new version of a protocol from its JSON; returns it.
pub async fn revise(state: &AppState, user: &CurrentUser, json: &str, reason: &str) -> Result<Protocol, AppError> {
    if !is_medical_director(state, user).await? {
        return Err(AppError::Forbidden);
    }
    let reason = checked_reason(reason)?;
    let next = Protocol::parse(json).map_err(refused)?;
    let mut set = current(state, user.clinic).await?;
    set.revise(next.clone()).map_err(refused)?;
    store_version(state, user, &next, reason).await?;
    Ok(next)
}

/// Saves a new version from the structured form: the `(JSON path, value)` pairs a medical
/// director submitted over the version `base_version` the form showed. The domain writes them
/// into the next version and validates it exactly as a JSON edit; a refusal names the form's
/// input (its JSON path as the field, its label in the message). A form shown before someone
/// else saved a version is refused rather than quietly undoing their change.
pub async fn revise_values(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    base_version: &str,
    submitted: &[(String, String)],
    reason: &str,
) -> Result<Protocol, AppError> {
    if !is_medical_director(state, user).await? {
        return Err(AppError::Forbidden);
    }
    let mut set = current(state, user.clinic).await?;
    let now = set.find(id).ok_or(AppError::NotFound)?.clone();
    if now.version != base_version.trim() {
        return Err(AppError::Conflict {
            field: "base_version",
            message: format!(
                "the protocol was changed meanwhile (version {} is now in force): open it again and make your change \
                 there",
                now.version
            ),
        });
    }
    let reason = checked_reason(reason)?;
    let year = u32::try_from(jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year()).unwrap_or(0);
    let version = form::next_version(&now.version, year)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("protocol {} has no valid version", now.id)))?;
    let values = form::tunable_values(&now);
    let on_form = |e: ProtocolError| match form::value_for_error(&values, &e.path) {
        Some(v) => AppError::InvalidItem { field: v.key.clone(), message: format!("{}: {}", v.label, e.message) },
        None if e.path.is_empty() => AppError::InvalidItem { field: "protocol".into(), message: e.message },
        None => AppError::InvalidItem { field: "protocol".into(), message: format!("{}: {}", e.path, e.message) },
    };
    let next = form::apply(&now, submitted, &version).map_err(on_form)?.protocol;
    set.revise(next.clone()).map_err(on_form)?;
    store_version(state, user, &next, reason).await?;
    Ok(next)
}

/// Stores a validated new version with its audit event, in one transaction, committed with the
/// version (what the use case returns: a request with an `Idempotency-Key` stores its answer to it
/// with the change, issue 9).
async fn store_version(state: &AppState, user: &CurrentUser, next: &Protocol, reason: &str) -> Result<(), AppError> {
    let definition = next.to_json().map_err(content_error)?;
    let mut tx = state.db.begin().await?;
    store::insert_protocol_version(
        &mut tx,
        &store::NewProtocolVersion {
            clinic: user.clinic,
            protocol_id: &next.id,
            version: &next.version,
            route: next.route.as_str(),
            definition: &definition,
            reason,
            by: Some(user.id),
        },
    )
    .await?;
    let mut e = user.event(AuditAction::ProtocolChanged, "protocol", Outcome::Success);
    e.entity_id = Some(format!("{}@{}", next.id, next.version));
    e.reason = Some(reason.to_owned());
    kapstone_store::audit::append(&mut tx, &e).await?;
    tx.commit_answering(next).await?;
    Ok(())
}

/// `POST /api/v1/dose/calculate`: the dose, volume and rates under the clinic's current
/// protocol, with its zone (normal, override, block) and the reasons.
pub async fn calculate(state: &AppState, user: &CurrentUser, req: &DoseRequest) -> Result<DoseCalculation, AppError> {
    let set = current(state, user.clinic).await?;
    set.calculate(req).map_err(AppError::Invalid)
}
