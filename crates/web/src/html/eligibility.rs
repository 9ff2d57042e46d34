//! The eligibility page: findings, the decision in force with its amendments, and (for
//! prescribers) the form to sign or amend. The form carries the hash of the inputs shown, so a
//! decision is refused if the record changed while the prescriber was reading.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::decision::{DecisionRequest, Disposition, Route, RouteChoice, SpravatoIndication, Verdict};
use kapstone_domain::eligibility::{Finding, FindingSeverity, Scope};
use kapstone_domain::permissions::{Action, allows};
use kapstone_domain::{PatientId, UserId};
use kapstone_store::eligibility::DecisionRow;
use kapstone_store::patients::PatientRow;

use super::{FieldErrors, Layout, PageResult, render, sentence, when};
use crate::app::eligibility::{self as app, Signing};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub struct FindingView {
    pub rule_id: String,
    pub severity: &'static str,
    pub css: &'static str,
    pub scope: &'static str,
    pub detail: String,
    pub rationale: String,
    pub source: String,
}

fn severity_label(s: FindingSeverity) -> (&'static str, &'static str) {
    match s {
        FindingSeverity::Exclude => ("Exclude", "finding-exclude"),
        FindingSeverity::PhysicianReview => ("Needs prescriber review", "finding-review"),
        FindingSeverity::MissingData => ("Missing data", "finding-missing"),
        FindingSeverity::Precaution => ("Precaution", "finding-precaution"),
        FindingSeverity::Info => ("Information", ""),
    }
}

fn scope_label(s: Scope) -> &'static str {
    match s {
        Scope::All => "all products",
        Scope::Esketamine => "Spravato (esketamine) only",
        Scope::Racemic => "racemic ketamine only",
    }
}

fn finding_view(f: &Finding) -> FindingView {
    let (severity, css) = severity_label(f.severity);
    FindingView {
        rule_id: f.rule_id.clone(),
        severity,
        css,
        scope: scope_label(f.scope),
        detail: f.detail.clone(),
        rationale: f.rationale.clone(),
        source: f.source.clone(),
    }
}

pub struct DecisionView {
    pub id: String,
    pub verdict: &'static str,
    pub routes: Vec<String>,
    pub indication: String,
    /// (rule, acceptable, reason)
    pub dispositions: Vec<(String, bool, String)>,
    pub summary: String,
    pub signed_by: String,
    pub signed_at: String,
    pub ruleset_version: String,
    pub settings_version: i64,
    pub amends: Option<String>,
    pub amendment_reason: String,
}

async fn decision_view(state: &AppState, d: &DecisionRow) -> Result<DecisionView, AppError> {
    let routes: Vec<RouteChoice> = serde_json::from_str(&d.routes).unwrap_or_default();
    let dispositions: Vec<Disposition> = serde_json::from_str(&d.dispositions).unwrap_or_default();
    let signer = kapstone_store::users::get(&state.db, UserId::from_uuid(d.signed_by)).await?;
    Ok(DecisionView {
        id: d.id.to_string(),
        verdict: if d.verdict == "eligible" { "Eligible" } else { "Not eligible" },
        routes: routes
            .iter()
            .map(|r| match &r.course_template {
                Some(t) => format!("{} — course {t}", r.route.label()),
                None => r.route.label().to_owned(),
            })
            .collect(),
        indication: match d.spravato_indication.as_deref() {
            Some("trd") => "Treatment-resistant depression".into(),
            Some(_) => "MDD with acute suicidal ideation or behaviour".into(),
            None => String::new(),
        },
        dispositions: dispositions.into_iter().map(|x| (x.rule_id, x.acceptable, x.reason)).collect(),
        summary: d.summary.clone(),
        signed_by: signer.map_or_else(|| "unknown".into(), |u| u.display_name),
        signed_at: when(d.signed_at.0),
        ruleset_version: d.ruleset_version.clone(),
        settings_version: d.settings_version,
        amends: d.amends_id.map(|a| a.to_string()),
        amendment_reason: d.amendment_reason.clone().unwrap_or_default(),
    })
}

/// A route the prescriber may tick, with its course templates.
pub struct RouteOption {
    pub value: &'static str,
    pub label: &'static str,
    pub templates: Vec<&'static str>,
    pub blocked: Option<String>,
}

/// A physician-review finding awaiting a disposition.
pub struct ReviewItem {
    pub rule_id: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "eligibility.html")]
struct EligibilityPage {
    layout: Layout,
    p: PatientRow,
    outcome: &'static str,
    esketamine: &'static str,
    racemic: &'static str,
    ruleset_version: String,
    settings_version: i64,
    input_sha256: String,
    findings: Vec<FindingView>,
    decision: Option<DecisionView>,
    history: Vec<DecisionView>,
    inputs_changed: bool,
    can_sign: bool,
    has_missing: bool,
    routes: Vec<RouteOption>,
    reviews: Vec<ReviewItem>,
    error: Option<String>,
    errors: FieldErrors,
    notice: Option<String>,
    /// What was submitted, redisplayed after an error so nothing typed is lost.
    submitted: Vec<(String, String)>,
}

impl EligibilityPage {
    fn was(&self, name: &str, value: &str) -> bool {
        self.submitted.iter().any(|(k, v)| k == name && v == value)
    }

    fn val(&self, name: &str) -> &str {
        self.submitted.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    error: Option<String>,
    errors: FieldErrors,
    notice: Option<String>,
    submitted: Vec<(String, String)>,
) -> PageResult<Html<String>> {
    let (p, a) = app::eligibility(state, user, id).await?;
    let rows = kapstone_store::eligibility::decisions(&state.db, id).await?;
    let mut views = Vec::new();
    for d in &rows {
        views.push(decision_view(state, d).await?);
    }
    let inputs_changed = rows.first().is_some_and(|d| d.input_sha256 != a.input_sha256);
    let e = &a.evaluation;
    let routes = Route::ALL
        .into_iter()
        .map(|r| {
            let blocked = e
                .findings_for(r.family())
                .find(|f| f.severity == FindingSeverity::Exclude)
                .map(|f| format!("excluded by {} ({})", f.rule_id, f.detail));
            RouteOption { value: r.as_str(), label: r.label(), templates: r.course_templates().to_vec(), blocked }
        })
        .collect();
    let reviews = e
        .findings
        .iter()
        .filter(|f| f.severity == FindingSeverity::PhysicianReview)
        .map(|f| ReviewItem { rule_id: f.rule_id.clone(), detail: f.detail.clone() })
        .collect();
    let missing = e.findings.iter().any(|f| f.severity == FindingSeverity::MissingData);
    let mut views = views.into_iter();
    let decision = views.next();
    render(&EligibilityPage {
        layout: Layout::for_user(&format!("Eligibility — {} {}", p.given_name, p.family_name), user, "/patients"),
        p,
        outcome: e.outcome.label(),
        esketamine: e.esketamine.label(),
        racemic: e.racemic.label(),
        ruleset_version: e.ruleset_version.clone(),
        settings_version: a.settings_version,
        input_sha256: a.input_sha256.clone(),
        findings: e.findings.iter().map(finding_view).collect(),
        decision,
        history: views.collect(),
        inputs_changed,
        can_sign: allows(Some(user.role), Action::SignEligibilityDecision),
        // Missing data blocks an eligible verdict (the domain refuses it), not "not eligible".
        has_missing: missing,
        routes,
        reviews,
        error,
        errors,
        notice,
        submitted,
    })
}

#[derive(serde::Deserialize)]
pub struct SignedQuery {
    #[serde(default)]
    signed: Option<u8>,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<SignedQuery>,
) -> PageResult<Html<String>> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let notice = q.signed.map(|_| "Decision signed.".to_owned());
    page(&state, &user, id, None, FieldErrors::default(), notice, Vec::new()).await
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
}

/// Reads the sign form into a decision request.
fn request_from(pairs: &[(String, String)]) -> Result<DecisionRequest, AppError> {
    let verdict = match value(pairs, "verdict") {
        "eligible" => Verdict::Eligible,
        "not_eligible" => Verdict::NotEligible,
        _ => return Err(kapstone_domain::FieldError::new("verdict", "choose eligible or not eligible").into()),
    };
    let mut routes = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "route") {
        let route = Route::parse(v).ok_or_else(|| kapstone_domain::FieldError::new("routes", "unknown route"))?;
        let template = value(pairs, &format!("course_{}", route.as_str()));
        routes.push(RouteChoice { route, course_template: (!template.is_empty()).then(|| template.to_owned()) });
    }
    let spravato_indication = match value(pairs, "spravato_indication") {
        "" => None,
        "trd" => Some(SpravatoIndication::Trd),
        "mdd_with_acute_suicidal_ideation" => Some(SpravatoIndication::MddWithAcuteSuicidalIdeation),
        _ => return Err(kapstone_domain::FieldError::new("spravato_indication", "choose from the list").into()),
    };
    let mut dispositions = Vec::new();
    for (k, v) in pairs {
        let Some(rule) = k.strip_prefix("disposition_") else { continue };
        let acceptable = match v.as_str() {
            "" => continue,
            "acceptable" => true,
            "not_acceptable" => false,
            _ => return Err(kapstone_domain::FieldError::new("dispositions", "choose from the list").into()),
        };
        dispositions.push(Disposition {
            rule_id: rule.to_owned(),
            acceptable,
            reason: value(pairs, &format!("reason_{rule}")).to_owned(),
        });
    }
    Ok(DecisionRequest {
        verdict,
        routes,
        spravato_indication,
        dispositions,
        summary: value(pairs, "summary").to_owned(),
    })
}

/// `POST /patients/{id}/eligibility`: signs or amends, then redirects to the page.
pub async fn sign(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let amends = match value(&pairs, "amends") {
        "" => None,
        v => Some((
            v.parse::<uuid::Uuid>().map_err(|_| kapstone_domain::FieldError::new("amends", "not a decision id"))?,
            value(&pairs, "amendment_reason"),
        )),
    };
    let result = match request_from(&pairs) {
        Ok(request) => {
            let signing = Signing {
                request: &request,
                reviewed_input_sha256: value(&pairs, "input_sha256"),
                amends,
                password: Some(value(&pairs, "password")),
                totp_code: Some(value(&pairs, "totp_code")),
            };
            app::sign(&state, &user, id, signing).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/eligibility?signed=1")).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::InvalidItem { .. } | AppError::Conflict { .. })) => {
            let status = if matches!(e, AppError::Conflict { .. }) {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let errors = FieldErrors::from_error(&e).unwrap_or_default();
            let mut errors = errors;
            // The domain names fields as the API does; the form's own names differ.
            errors.rename("amends", "amendment_reason");
            let submitted: Vec<(String, String)> =
                pairs.into_iter().filter(|(k, _)| k != "password" && k != "totp_code" && k != "csrf_token").collect();
            let page = page(&state, &user, id, Some(sentence(&e.public_message(""))), errors, None, submitted).await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
