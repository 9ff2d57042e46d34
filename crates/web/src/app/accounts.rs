//! Managing accounts: admins create, change and deactivate them; everyone manages their own
//! password, second factor and sessions.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::patient::Mrn;
use kapstone_domain::{ClinicId, Email, FieldError, NewPassword, PatientId, PersonName, Role, SessionId, UserId};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use kapstone_store::users::{self, NewUser, UserRow};
use kapstone_store::{audit, sessions};

use super::password_work;
use super::sign_in::record_failure;
use crate::auth::guard::CurrentUser;
use crate::auth::{password, tokens, totp};
use crate::error::AppError;
use crate::state::AppState;

/// Who is changing accounts: an admin in the web UI or API, or an operator at the command line
/// (with shell access to the server, e.g. creating the first admin or unlocking the last one).
#[derive(Clone, Copy)]
pub enum Operator<'a> {
    Admin(&'a CurrentUser),
    CommandLine { clinic: ClinicId },
}

impl Operator<'_> {
    pub fn clinic(&self) -> ClinicId {
        match self {
            Operator::Admin(a) => a.clinic,
            Operator::CommandLine { clinic } => *clinic,
        }
    }

    fn event(&self, action: AuditAction, entity_type: &'static str) -> kapstone_domain::audit::NewAuditEvent {
        match self {
            Operator::Admin(a) => a.event(action, entity_type, Outcome::Success),
            Operator::CommandLine { clinic } => {
                let mut e = kapstone_domain::audit::NewAuditEvent::new(action, entity_type, Outcome::Success);
                e.clinic_id = Some(*clinic);
                e.reason = Some("command line".into());
                e
            }
        }
    }

    fn admin_id(&self) -> Option<UserId> {
        match self {
            Operator::Admin(a) => Some(a.id),
            Operator::CommandLine { .. } => None,
        }
    }
}

/// A new account as typed into the form or sent to the API.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountInput {
    pub email: String,
    pub name: String,
    pub role: String,
    pub password: String,
    /// Required for a patient account: the MRN of the patient record it opens.
    #[serde(default)]
    pub patient_mrn: Option<String>,
}

/// Creates an account in the operator's clinic.
pub async fn create_account(state: &AppState, by: Operator<'_>, input: NewAccountInput) -> Result<UserId, AppError> {
    let clinic = by.clinic();
    let email = Email::parse(&input.email)?;
    let name = PersonName::parse("name", &input.name)?;
    let role: Role = input.role.parse()?;
    let pw = NewPassword::parse(&input.password, Some(&email))?;
    let mrn = match (role, input.patient_mrn.as_deref().map(str::trim).filter(|s| !s.is_empty())) {
        (Role::Patient, Some(m)) => Some(Mrn::parse(m).map_err(|e| FieldError::new("patient_mrn", e.message))?),
        (Role::Patient, None) => {
            return Err(FieldError::new("patient_mrn", "a patient account needs the MRN of its patient record").into());
        }
        (_, Some(_)) => {
            return Err(FieldError::new("patient_mrn", "only a patient account is linked to a patient record").into());
        }
        (_, None) => None,
    };
    let secret = pw.expose().to_owned();
    let phc = password_work(state, move || password::hash(&secret)).await??;
    let mut tx = state.db.begin().await?;
    let patient = match &mrn {
        Some(m) => Some(
            kapstone_store::patients::id_by_mrn(&mut tx, clinic, m)
                .await?
                .map(PatientId::from_uuid)
                .ok_or_else(|| FieldError::new("patient_mrn", "no patient with this MRN in this clinic"))?,
        ),
        None => None,
    };
    if let Some(p) = patient
        && users::exists_for_patient(&mut tx, p).await?
    {
        return Err(AppError::Conflict { field: "patient_mrn", message: "this patient already has an account".into() });
    }
    let id = users::insert(
        &mut tx,
        &NewUser { clinic, email: &email, display_name: &name, role, patient, password_hash: &phc },
    )
    .await?;
    let mut e = by.event(AuditAction::UserCreated, "user");
    e.entity_id = Some(id.to_string());
    e.patient_id = patient;
    let by_whom = e.reason.take().map(|r| format!(", {r}")).unwrap_or_default();
    e.reason = Some(format!("role {role}{by_whom}"));
    audit::append(&mut tx, &e).await?;
    tx.commit_answering(&id).await?;
    Ok(id)
}

/// Changes an account's name, role or active flag. Deactivation ends its sessions at once.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    pub name: String,
    pub role: String,
    pub active: bool,
}

pub async fn update_account(
    state: &AppState,
    by: Operator<'_>,
    id: UserId,
    input: AccountUpdate,
) -> Result<(), AppError> {
    let name = PersonName::parse("name", &input.name)?;
    let role: Role = input.role.parse()?;
    let mut tx = state.db.begin().await?;
    let Some(current) = users::get_in(&mut tx, id).await?.filter(|u| u.clinic() == by.clinic()) else {
        return Err(AppError::NotFound);
    };
    let old_role = current.role()?;
    if (old_role == Role::Patient) != (role == Role::Patient) {
        return Err(
            FieldError::new("role", "a staff account cannot become a patient account or the other way round").into()
        );
    }
    if by.admin_id() == Some(id) && (!input.active || role != Role::Admin) {
        return Err(FieldError::new("role", "you cannot remove your own admin role or deactivate yourself").into());
    }
    users::update_profile(&mut tx, id, &name, role, input.active).await?;
    let action = match (current.active, input.active) {
        (true, false) => AuditAction::UserDeactivated,
        (false, true) => AuditAction::UserReactivated,
        _ => AuditAction::UserUpdated,
    };
    if !input.active {
        sessions::end_all_for_user(&mut tx, id, None, "account deactivated").await?;
    }
    let mut e = by.event(action, "user");
    e.entity_id = Some(id.to_string());
    e.patient_id = current.patient();
    if old_role != role {
        let by_whom = e.reason.take().map(|r| format!(", {r}")).unwrap_or_default();
        e.reason = Some(format!("role {old_role} -> {role}{by_whom}"));
    }
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Own password change: needs the current password; ends the account's other sessions.
pub async fn change_password(state: &AppState, me: &CurrentUser, current: &str, new: &str) -> Result<(), AppError> {
    let email = Email::parse(&me.email)?;
    let new = NewPassword::parse(new, Some(&email))?;
    let Some(row) = users::get(&state.db, me.id).await? else { return Err(AppError::Unauthenticated) };
    let (cur, phc) = (current.to_owned(), row.password_hash.clone());
    if !password_work(state, move || password::verify(&cur, &phc)).await? {
        record_failure(state, &row, "wrong current password", me.ip.as_deref()).await?;
        return Err(FieldError::new("current_password", "this is not your current password").into());
    }
    let secret = new.expose().to_owned();
    let phc = password_work(state, move || password::hash(&secret)).await??;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut tx, me.id, &phc).await?;
    sessions::end_all_for_user(&mut tx, me.id, Some(me.session), "password changed").await?;
    let mut e = me.event(AuditAction::PasswordChanged, "user", Outcome::Success);
    e.entity_id = Some(me.id.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// An admin sets a new password for someone who forgot theirs: it also lifts a lockout and ends
/// the account's sessions. The admin passes it on safely; the person can change it after.
pub async fn reset_password(state: &AppState, by: Operator<'_>, id: UserId, new: &str) -> Result<(), AppError> {
    let target = users::get(&state.db, id).await?.filter(|u| u.clinic() == by.clinic()).ok_or(AppError::NotFound)?;
    // An operator at the command line already has the server; only the web and API are limited.
    if let Operator::Admin(admin) = by {
        use super::rate_limit::{By, Limited, check};
        check(state, Limited::PasswordResets, &admin.id.to_string(), By::User(admin)).await?;
    }
    let email = Email::parse(&target.email)?;
    let new = NewPassword::parse(new, Some(&email))?;
    let secret = new.expose().to_owned();
    let phc = password_work(state, move || password::hash(&secret)).await??;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut tx, id, &phc).await?;
    users::record_successful_sign_in(&mut tx, id).await?;
    sessions::end_all_for_user(&mut tx, id, None, "password reset by an admin").await?;
    let mut e = by.event(AuditAction::PasswordChanged, "user");
    e.entity_id = Some(id.to_string());
    e.patient_id = target.patient();
    e.reason = Some(match by {
        Operator::Admin(_) => "reset by an admin; lockout cleared, sessions ended".into(),
        Operator::CommandLine { .. } => "reset from the command line; lockout cleared, sessions ended".into(),
    });
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Step 1 of MFA enrolment: a secret stored but not yet enabled. A pending secret is reused, so
/// reloading the page does not invalidate what the person already scanned.
pub async fn begin_mfa_enrolment(state: &AppState, me: &CurrentUser) -> Result<String, AppError> {
    if let Some(row) = users::get(&state.db, me.id).await?
        && !row.totp_enabled
        && let Some(pending) = row.totp_secret
    {
        return Ok(pending);
    }
    let secret = totp::new_secret();
    let mut tx = state.db.begin().await?;
    users::set_totp(&mut tx, me.id, Some(&secret), false).await?;
    tx.commit().await?;
    Ok(secret)
}

/// Step 2: the user proves their app has the secret; MFA is on and recovery codes are issued
/// (shown once, stored hashed).
/// Needs the account's password too (ASVS: re-authenticate before changing MFA), so an unattended
/// session cannot be used to bind someone else's phone to the account.
pub async fn confirm_mfa_enrolment(
    state: &AppState,
    me: &CurrentUser,
    password_input: &str,
    code: &str,
) -> Result<Vec<String>, AppError> {
    let Some(row) = users::get(&state.db, me.id).await? else { return Err(AppError::Unauthenticated) };
    let (pw, phc) = (password_input.to_owned(), row.password_hash.clone());
    if !password_work(state, move || password::verify(&pw, &phc)).await? {
        record_failure(state, &row, "wrong password at MFA enrolment", me.ip.as_deref()).await?;
        return Err(FieldError::new("password", "this is not your current password").into());
    }
    let Some(secret) = row.totp_secret.filter(|_| !row.totp_enabled) else {
        return Err(FieldError::new("code", "start the set-up again: no pending authenticator secret").into());
    };
    let now = u64::try_from(kapstone_domain::UtcTs::now().unix_micros() / 1_000_000).unwrap_or(0);
    let step = totp::check(&secret, &row.email, code, now).ok_or_else(|| {
        FieldError::new("code", "that code is not right; check the time on your phone and try the newest code")
    })?;
    let codes: Vec<String> = (0..10).map(|_| tokens::recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| tokens::recovery_code_hash(c)).collect();
    let mut tx = state.db.begin().await?;
    users::set_totp(&mut tx, me.id, Some(&secret), true).await?;
    users::claim_totp_step(&mut tx, me.id, step).await?;
    users::replace_recovery_codes(&mut tx, me.id, &hashes).await?;
    let mut e = me.event(AuditAction::MfaEnabled, "user", Outcome::Success);
    e.entity_id = Some(me.id.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(codes)
}

/// Turns MFA off (needs the password). Refused where the clinic requires MFA for the role.
pub async fn disable_mfa(state: &AppState, me: &CurrentUser, password_input: &str) -> Result<(), AppError> {
    let settings = kapstone_store::clinics::current_settings(&state.db, me.clinic).await?;
    if settings.requires_mfa(me.role) {
        return Err(FieldError::new("password", "your clinic requires a second factor for your role").into());
    }
    let Some(row) = users::get(&state.db, me.id).await? else { return Err(AppError::Unauthenticated) };
    let (pw, phc) = (password_input.to_owned(), row.password_hash.clone());
    if !password_work(state, move || password::verify(&pw, &phc)).await? {
        record_failure(state, &row, "wrong password", me.ip.as_deref()).await?;
        return Err(FieldError::new("password", "this is not your current password").into());
    }
    let mut tx = state.db.begin().await?;
    users::set_totp(&mut tx, me.id, None, false).await?;
    users::replace_recovery_codes(&mut tx, me.id, &[]).await?;
    let mut e = me.event(AuditAction::MfaDisabled, "user", Outcome::Success);
    e.entity_id = Some(me.id.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends one of my other sessions (e.g. a tablet left signed in).
pub async fn end_my_session(state: &AppState, me: &CurrentUser, session: SessionId) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    if !sessions::end(&mut tx, session, me.id, "ended by its owner").await? {
        return Err(AppError::NotFound);
    }
    let mut e = me.event(AuditAction::SessionEnded, "session", Outcome::Success);
    e.entity_id = Some(session.to_string());
    e.reason = Some("ended by its owner".into());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// The clinic's accounts. Patient accounts carry a patient's name and link to their record, so
/// the listing is audited as a read of patient data.
pub async fn list_accounts(state: &AppState, admin: &CurrentUser) -> Result<Vec<UserRow>, AppError> {
    let rows = users::list(&state.db, admin.clinic).await?;
    audit_listed(state, admin, &rows).await?;
    Ok(rows)
}

/// A page of `limit` of the clinic's accounts in the order they were made, read with one more that
/// says whether a next page follows (the API's list; see `api::page`), audited alike.
pub async fn accounts_page(
    state: &AppState,
    admin: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<UserRow>, AppError> {
    let rows = users::page(
        &state.db,
        &Page { clinic: admin.clinic, filter, after: TimeKey::oldest_first(after), limit: limit + 1 },
    )
    .await?;
    audit_listed(state, admin, &rows[..rows.len().min(keyset::sent(limit))]).await?;
    Ok(rows)
}

/// Listing patients' accounts is audited (a count).
async fn audit_listed(state: &AppState, admin: &CurrentUser, rows: &[UserRow]) -> Result<(), AppError> {
    let patients = rows.iter().filter(|u| u.patient_id.is_some()).count();
    if patients > 0 {
        let mut e = admin.event(AuditAction::UsersListed, "user", Outcome::Success);
        e.reason = Some(format!("{} accounts, {patients} of them patient accounts", rows.len()));
        state.read_audit.record(e).await?;
    }
    Ok(())
}

/// One account of the clinic; opening a patient's account is audited against that patient.
pub async fn get_account(state: &AppState, admin: &CurrentUser, id: UserId) -> Result<UserRow, AppError> {
    let row = users::get(&state.db, id).await?.filter(|u| u.clinic() == admin.clinic).ok_or(AppError::NotFound)?;
    if let Some(patient) = row.patient() {
        let mut e = admin.event(AuditAction::UserViewed, "user", Outcome::Success);
        e.entity_id = Some(id.to_string());
        e.patient_id = Some(patient);
        state.read_audit.record(e).await?;
    }
    Ok(row)
}
