//! FHIR R4 at `/fhir/R4` (issue 8): the CapabilityStatement, read and search for the types in
//! [`resources::Kind`], and the Bulk Data `$export` (system, Patient, Group) with its status and
//! NDJSON files. Behind the same guard as `/api/v1` (bearer token or session + CSRF header),
//! each route with its own permission; every answer is `application/fhir+json`, every error an
//! OperationOutcome. Psychotherapy notes and other free-text notes are never a source.

pub mod export;
pub mod params;
pub mod resources;
pub mod search;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use self::resources::Kind;
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub const FHIR_JSON: &str = "application/fhir+json";

/// A FHIR resource as the response body.
pub struct Fhir(pub StatusCode, pub Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let mut r = (self.0, self.1.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        r
    }
}

/// An error as an OperationOutcome: the issue code, the message, the parameter at fault.
#[derive(Debug)]
pub struct FhirError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub expression: Option<String>,
    /// Seconds for `Retry-After` (a rate-limit refusal).
    pub retry_after: Option<u64>,
}

impl FhirError {
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: message.into(),
            expression: param.map(str::to_owned),
            retry_after: None,
        }
    }

    pub fn not_supported(param: Option<&str>, message: impl Into<String>) -> Self {
        Self { code: "not-supported", ..Self::invalid(param, message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not-found",
            message: message.into(),
            expression: None,
            retry_after: None,
        }
    }

    pub fn outcome(&self) -> Value {
        outcome("error", self.code, &self.message, self.expression.as_deref())
    }
}

pub fn outcome(severity: &str, code: &str, message: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({ "severity": severity, "code": code, "diagnostics": message });
    if let Some(e) = expression {
        issue["expression"] = json!([e]);
    }
    json!({ "resourceType": "OperationOutcome", "issue": [issue] })
}

impl From<AppError> for FhirError {
    fn from(e: AppError) -> Self {
        let status = e.status();
        let code = match &e {
            AppError::BadRequest { .. } | AppError::Invalid(_) | AppError::InvalidItem { .. } => "invalid",
            AppError::Unauthenticated | AppError::InvalidCredentials | AppError::MfaRequired => "login",
            AppError::Forbidden | AppError::Csrf => "forbidden",
            AppError::NotFound => "not-found",
            AppError::Conflict { .. } => "conflict",
            AppError::Refused { .. } => "business-rule",
            AppError::PayloadTooLarge => "too-costly",
            AppError::RateLimited { .. } => "throttled",
            AppError::UnsupportedMediaType | AppError::MethodNotAllowed => "not-supported",
            AppError::Unavailable | AppError::StorageFault => "transient",
            AppError::Internal(_) => "exception",
        };
        let correlation = e.log();
        let message = e.public_message(&correlation);
        let retry_after = match &e {
            AppError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        Self { status, code, message, expression: e.field().map(str::to_owned), retry_after }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut r = Fhir(self.status, self.outcome()).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// `GET /fhir/R4/metadata`: exactly what this server does.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let ctx = search::ctx(&state);
    let count = json!({ "name": "_count", "type": "number", "documentation": format!(
        "page size, 1 to {} (default {}); the Bundle's next link carries the cursor",
        params::MAX_COUNT, params::DEFAULT_COUNT
    ) });
    let types: Vec<Value> = Kind::ALL
        .into_iter()
        .map(|k| {
            let mut params: Vec<Value> = k
                .search_params()
                .iter()
                .map(|(name, ty, doc)| json!({ "name": name, "type": ty, "documentation": doc }))
                .collect();
            params.push(count.clone());
            let mut r = json!({
                "type": k.as_str(),
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": params,
            });
            match k {
                Kind::AuditEvent => r["documentation"] = json!("administrators only"),
                Kind::Patient => {
                    r["operation"] = json!([{
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                    }]);
                }
                _ => {}
            }
            r
        })
        .collect();
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": kapstone_domain::UtcTs::now().rfc3339(),
        "publisher": "Kapstone",
        "kind": "instance",
        "software": { "name": "Kapstone", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Kapstone FHIR R4 API", "url": ctx.base },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read and search only. Dates compare in UTC. Group ids of $export are location ids \
                              (the patients with an appointment there). Psychotherapy notes are never served.",
            "security": {
                "cors": false,
                "description": "Bearer token from POST /api/v1/auth/login (or the signed-in session with the \
                                X-CSRF-Token header); each type needs its role's permission; every read is audited.",
            },
            "resource": types,
            "operation": [
                { "name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" },
                {
                    "name": "group-export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
                },
            ],
        }],
    });
    Fhir(StatusCode::OK, body).into_response()
}

async fn read_one(state: &AppState, user: &CurrentUser, kind: Kind, id: &str) -> Response {
    match search::read(state, user, kind, id).await {
        Ok(r) => Fhir(StatusCode::OK, r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn search_type(state: &AppState, user: &CurrentUser, kind: Kind, q: Option<String>) -> Response {
    match search::search(state, user, kind, q.as_deref()).await {
        Ok(r) => Fhir(StatusCode::OK, r).into_response(),
        Err(e) => e.into_response(),
    }
}

macro_rules! handlers {
    ($($kind:ident: $read:ident, $search:ident;)*) => {$(
        pub async fn $read(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> Response {
            read_one(&state, &user, Kind::$kind, &id).await
        }
        pub async fn $search(State(state): State<AppState>, user: CurrentUser, RawQuery(q): RawQuery) -> Response {
            search_type(&state, &user, Kind::$kind, q).await
        }
    )*};
}

handlers! {
    Patient: read_patient, search_patient;
    Practitioner: read_practitioner, search_practitioner;
    Location: read_location, search_location;
    Appointment: read_appointment, search_appointment;
    Encounter: read_encounter, search_encounter;
    Condition: read_condition, search_condition;
    AllergyIntolerance: read_allergy, search_allergy;
    MedicationStatement: read_medication_statement, search_medication_statement;
    MedicationAdministration: read_medication_administration, search_medication_administration;
    Observation: read_observation, search_observation;
    Questionnaire: read_questionnaire, search_questionnaire;
    QuestionnaireResponse: read_questionnaire_response, search_questionnaire_response;
    Consent: read_consent, search_consent;
    AuditEvent: read_audit_event, search_audit_event;
}

/// Any other `/fhir/R4/{type}[/{id}]`: a type this server does not serve.
pub async fn unsupported_type(Path(params): Path<Vec<(String, String)>>) -> Response {
    let ty = params.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    let shown: String = ty.chars().filter(char::is_ascii_alphanumeric).take(64).collect();
    let message = match Kind::parse(ty) {
        Some(_) => "this interaction is not supported".to_owned(),
        None => format!("unsupported resource type `{shown}`"),
    };
    FhirError { status: StatusCode::NOT_FOUND, code: "not-supported", message, expression: None, retry_after: None }
        .into_response()
}
