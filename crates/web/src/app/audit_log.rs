//! Reviewing the audit log (admins). Looking at the log is itself logged.

use kapstone_domain::audit::{AuditAction, Outcome, StoredAuditEvent};
use kapstone_domain::{FieldError, PatientId, UserId, UtcTs};
use kapstone_store::audit::{self, AuditFilter};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime, Time};

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// Filter fields as typed by a person (query string or JSON).
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct AuditQuery {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub patient: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    /// First day included, YYYY-MM-DD (UTC).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day included, YYYY-MM-DD (UTC).
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub before: Option<i64>,
}

fn day(field: &'static str, raw: &str) -> Result<Date, FieldError> {
    Date::parse(raw.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|_| FieldError::new(field, "enter a date as YYYY-MM-DD"))
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl AuditQuery {
    /// Parses every field; the error names the first bad one.
    pub fn to_filter(&self, clinic: &str) -> Result<AuditFilter, FieldError> {
        let user = present(&self.user)
            .map(|u| u.parse::<UserId>().map_err(|_| FieldError::new("user", "not a user id")))
            .transpose()?;
        let patient = present(&self.patient)
            .map(|p| p.parse::<PatientId>().map_err(|_| FieldError::new("patient", "not a patient id")))
            .transpose()?;
        let action = present(&self.action)
            .map(|a| AuditAction::parse(a).ok_or_else(|| FieldError::new("action", "unknown action")))
            .transpose()?;
        let from = present(&self.from).map(|d| day("from", d)).transpose()?;
        let to = present(&self.to).map(|d| day("to", d)).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            return Err(FieldError::new("to", "the end date is before the start date"));
        }
        let start = |d: Date| UtcTs::from_datetime(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc());
        Ok(AuditFilter {
            clinic_id: Some(clinic.to_owned()),
            actor_user_id: user.map(|u| u.to_string()),
            patient_id: patient.map(|p| p.to_string()),
            action: action.map(|a| a.as_str().to_owned()),
            from: from.map(start),
            to: to.and_then(|d| d.next_day()).map(start),
            before_seq: self.before,
        })
    }
}

pub const PAGE: i64 = 100;

/// One page (newest first) and whether there is more.
pub async fn view(
    state: &AppState,
    admin: &CurrentUser,
    q: &AuditQuery,
) -> Result<(Vec<StoredAuditEvent>, bool), AppError> {
    view_page(state, admin, q, PAGE).await
}

/// As [`view`], `limit` events at a time (the API's `?limit=`); newest first, before `q.before`.
pub async fn view_page(
    state: &AppState,
    admin: &CurrentUser,
    q: &AuditQuery,
    limit: i64,
) -> Result<(Vec<StoredAuditEvent>, bool), AppError> {
    let filter = q.to_filter(&admin.clinic.to_string())?;
    let mut rows = audit::search(&state.db, &filter, limit + 1).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(100);
    rows.truncate(usize::try_from(limit).unwrap_or(100));
    let mut e = admin.event(AuditAction::AuditViewed, "audit_log", Outcome::Success);
    e.reason = Some(describe(&filter));
    state.read_audit.record(e).await?;
    Ok((rows, more))
}

fn describe(f: &AuditFilter) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &f.actor_user_id {
        parts.push(format!("user={u}"));
    }
    if let Some(p) = &f.patient_id {
        parts.push(format!("patient={p}"));
    }
    if let Some(a) = &f.action {
        parts.push(format!("action={a}"));
    }
    if let Some(t) = f.from {
        parts.push(format!("from={t}"));
    }
    if let Some(t) = f.to {
        parts.push(format!("to={t}"));
    }
    if parts.is_empty() { "all events".into() } else { parts.join(" ") }
}

const CSV_HEADER: &str =
    "seq,at,actor_user_id,actor_role,action,entity_type,entity_id,patient_id,source_ip,outcome,reason,hash\n";

/// The whole filtered log as CSV, oldest first, as a stream of chunks: one page of 5,000 events is
/// read at a time and sent on, so memory stays flat however large the log. The export is audited
/// before the first byte leaves.
pub async fn export_csv(
    state: &AppState,
    admin: &CurrentUser,
    q: &AuditQuery,
) -> Result<impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send + 'static, AppError> {
    let mut filter = q.to_filter(&admin.clinic.to_string())?;
    filter.before_seq = None;
    super::reauth::before_export(state, admin).await?;
    let mut e = admin.event(AuditAction::AuditExported, "audit_log", Outcome::Success);
    e.reason = Some(describe(&filter));
    state.read_audit.record(e).await?;
    let db = state.db.clone();
    // State: None before the header is sent, then Some(last seq sent).
    Ok(futures_util::stream::unfold(Some(None::<i64>), move |cursor| {
        let (db, filter) = (db.clone(), filter.clone());
        async move {
            let after = match cursor? {
                None => return Some((Ok(CSV_HEADER.to_owned()), Some(Some(0)))),
                Some(after) => after,
            };
            match audit::search_oldest_first(&db, &filter, after, 5_000).await {
                Ok(rows) => {
                    let last = rows.last()?.seq;
                    let mut chunk = String::with_capacity(rows.len() * 160);
                    for e in &rows {
                        append_csv_row(&mut chunk, e);
                    }
                    Some((Ok(chunk), Some(Some(last))))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed part-way");
                    Some((Err(std::io::Error::other("audit export failed")), None))
                }
            }
        }
    }))
}

fn append_csv_row(out: &mut String, e: &StoredAuditEvent) {
    let cols = [
        e.seq.to_string(),
        e.at.rfc3339(),
        e.actor_user_id.clone().unwrap_or_default(),
        e.actor_role.clone().unwrap_or_default(),
        e.action.clone(),
        e.entity_type.clone(),
        e.entity_id.clone().unwrap_or_default(),
        e.patient_id.clone().unwrap_or_default(),
        e.source_ip.clone().unwrap_or_default(),
        e.outcome.clone(),
        e.reason.clone().unwrap_or_default(),
        e.hash.clone(),
    ];
    out.push_str(&cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
    out.push('\n');
}

/// RFC 4180 quoting, and a leading `'` on values a spreadsheet would run as a formula.
pub(crate) fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formula_safe() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }

    #[test]
    fn bad_filters_name_their_field() {
        let q = AuditQuery { from: Some("26/11/2026".into()), ..Default::default() };
        assert_eq!(q.to_filter("c").err().map(|e| e.field), Some("from"));
        let q = AuditQuery { action: Some("drop table".into()), ..Default::default() };
        assert_eq!(q.to_filter("c").err().map(|e| e.field), Some("action"));
        let q = AuditQuery { from: Some("2026-11-02".into()), to: Some("2026-11-01".into()), ..Default::default() };
        assert_eq!(q.to_filter("c").err().map(|e| e.field), Some("to"));
    }

    #[test]
    fn the_to_date_includes_its_whole_day() {
        let q = AuditQuery { from: Some("2026-11-01".into()), to: Some("2026-11-01".into()), ..Default::default() };
        let f = q.to_filter("c").ok();
        let (from, to) = (f.as_ref().and_then(|f| f.from), f.as_ref().and_then(|f| f.to));
        assert_eq!(from.map(|t| t.rfc3339()), Some("2026-11-01T00:00:00.000000Z".to_owned()));
        assert_eq!(to.map(|t| t.rfc3339()), Some("2026-11-02T00:00:00.000000Z".to_owned()));
    }
}
