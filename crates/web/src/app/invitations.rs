//! Inviting a patient to the portal: a single-use, expiring link sent through the outbox; the
//! patient sets a password and is signed in. The link's token is stored only as a hash, and
//! until it is redeemed it opens nothing but the set-password step.

use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::{Email, FieldError, NewPassword, PatientId, PersonName, Role, UtcTs};
use kapstone_store::sessions::SessionKind;
use kapstone_store::users::{self, NewUser};
use kapstone_store::{audit, invitations, patients};

use super::password_work;
use super::sign_in::{NewSessionIssued, issue_session};
use crate::auth::guard::CurrentUser;
use crate::auth::{password, tokens};
use crate::error::AppError;
use crate::state::AppState;

/// Sends a portal invitation to `email` for one of the clinic's patients.
pub async fn invite(state: &AppState, staff: &CurrentUser, patient: PatientId, email: &str) -> Result<(), AppError> {
    let email = Email::parse(email)?;
    let p = patients::get(&state.db, staff.clinic, patient).await?.ok_or(AppError::NotFound)?;
    super::rate_limit::check(
        state,
        super::rate_limit::Limited::InvitationsSent,
        &staff.id.to_string(),
        super::rate_limit::By::User(staff),
    )
    .await?;
    if users::find_by_email(&state.db, &email).await?.is_some() {
        return Err(AppError::Conflict { field: "email", message: "an account already uses this email".into() });
    }
    let token = tokens::random_token();
    let expires_at = UtcTs::now().plus(state.config.invitation_lifetime);
    let link = format!("{}/invite/{token}", state.config.public_url.trim_end_matches('/'));
    let days = state.config.invitation_lifetime.whole_days();
    let body = format!(
        "Hello {given},\n\nYour care team at the clinic has invited you to your patient portal, where you can fill in \
         questionnaires and see what comes next in your care.\n\nOpen this link to choose a password (it works once, \
         for {days} days):\n{link}\n\nIf you did not expect this message, you can ignore it.\n\nIf you are in crisis, \
         call or text 988.",
        given = p.given_name
    );
    let mut tx = state.db.begin().await?;
    if users::exists_for_patient(&mut tx, patient).await? {
        return Err(AppError::Conflict {
            field: "patient",
            message: "this patient already has a portal account".into(),
        });
    }
    invitations::cancel_open(&mut tx, patient, UtcTs::now()).await?;
    let id = invitations::create(
        &mut tx,
        staff.clinic,
        patient,
        email.as_str(),
        &tokens::token_hash(&token),
        staff.id,
        expires_at,
    )
    .await?;
    let links = invitations::MessageLinks { patient: Some(patient), invitation: Some(id) };
    invitations::queue_message(&mut tx, staff.clinic, email.as_str(), "Your patient portal invitation", &body, links)
        .await?;
    let mut e = staff.event(AuditAction::PortalInvited, "portal_invitation", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// The invitation behind a link, if it can still be used: (email, patient given name).
pub async fn check(state: &AppState, token: &str) -> Result<(String, String), AppError> {
    let inv = usable(state, token).await?;
    let p = patients::get(
        &state.db,
        kapstone_domain::ClinicId::from_uuid(inv.clinic_id),
        PatientId::from_uuid(inv.patient_id),
    )
    .await?
    .ok_or(AppError::NotFound)?;
    Ok((inv.email, p.given_name))
}

async fn usable(state: &AppState, token: &str) -> Result<invitations::InvitationRow, AppError> {
    let expired = || {
        FieldError::new("token", "this invitation link has expired or was already used; ask your clinic for a new one")
    };
    let inv = invitations::find(&state.db, &tokens::token_hash(token)).await?.ok_or_else(expired)?;
    if inv.used_at.is_some() || inv.expires_at.0 <= UtcTs::now() {
        return Err(expired().into());
    }
    Ok(inv)
}

/// The patient chooses a password: the account is created, linked to the record, and signed in.
pub async fn redeem(
    state: &AppState,
    token: &str,
    new_password: &str,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<NewSessionIssued, AppError> {
    // Counted before the token is looked up, so guessing links from one address is limited too.
    super::rate_limit::check(
        state,
        super::rate_limit::Limited::InvitationAcceptsPerAddress,
        ip.unwrap_or("unknown"),
        super::rate_limit::By::Anonymous { ip, account: None },
    )
    .await?;
    let inv = usable(state, token).await?;
    let email = Email::parse(&inv.email)?;
    let pw = NewPassword::parse(new_password, Some(&email))?;
    let clinic = kapstone_domain::ClinicId::from_uuid(inv.clinic_id);
    let patient = PatientId::from_uuid(inv.patient_id);
    let p = patients::get(&state.db, clinic, patient).await?.ok_or(AppError::NotFound)?;
    let name = PersonName::parse("name", &format!("{} {}", p.given_name, p.family_name))?;
    let secret = pw.expose().to_owned();
    let phc = password_work(state, move || password::hash(&secret)).await??;
    let mut tx = state.db.begin().await?;
    if !invitations::redeem(&mut tx, inv.id, UtcTs::now()).await? {
        return Err(FieldError::new("token", "this invitation link has expired or was already used").into());
    }
    invitations::redact_link(&mut tx, inv.id).await?;
    let user_id = users::insert(
        &mut tx,
        &NewUser {
            clinic,
            email: &email,
            display_name: &name,
            role: Role::Patient,
            patient: Some(patient),
            password_hash: &phc,
        },
    )
    .await?;
    let user = users::get_in(&mut tx, user_id).await?.ok_or(AppError::NotFound)?;
    let issued = issue_session(&mut tx, state, &user, SessionKind::Browser, false, ip, user_agent).await?;
    let mut e = NewAuditEvent::new(AuditAction::InvitationRedeemed, "portal_invitation", Outcome::Success);
    e.clinic_id = Some(clinic);
    e.actor_user_id = Some(user_id);
    e.actor_role = Some(Role::Patient);
    e.entity_id = Some(inv.id.to_string());
    e.patient_id = Some(patient);
    e.source_ip = ip.map(str::to_owned);
    e.reason = Some("portal account created and signed in".into());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(issued)
}

/// The clinic's outbox (admins), newest first. Messages name patients, so viewing is audited.
pub async fn outbox(state: &AppState, admin: &CurrentUser) -> Result<Vec<invitations::OutboxRow>, AppError> {
    let rows = invitations::outbox(&state.db, admin.clinic, 200).await?;
    // One event per patient named in the messages, so "who viewed my record" shows it.
    let mut seen = std::collections::HashSet::new();
    for patient in rows.iter().filter_map(|r| r.patient_id).filter(|p| seen.insert(*p)) {
        let mut e = admin.event(AuditAction::OutboxViewed, "outbox", Outcome::Success);
        e.patient_id = Some(PatientId::from_uuid(patient));
        state.read_audit.record(e).await?;
    }
    if seen.is_empty() {
        let mut e = admin.event(AuditAction::OutboxViewed, "outbox", Outcome::Success);
        e.reason = Some(format!("{} messages", rows.len()));
        state.read_audit.record(e).await?;
    }
    Ok(rows)
}
