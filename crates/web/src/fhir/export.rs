//! FHIR Bulk Data export: `$export` at system, Patient and Group level queues a job (202 with
//! `Content-Location`), `$export-status/{id}` reports progress (202 + `X-Progress`) and then the
//! manifest, and `$export-file/{id}/{Type}.ndjson` serves each file, to the requester only.
//!
//! A job runs once even with several servers on one database: it is claimed with
//! `UPDATE ... WHERE status = 'queued'` (or a lapsed lease). Rows are streamed from the database
//! (sqlx `fetch`) straight into buffered NDJSON files under the configured export directory;
//! no table is loaded into memory.

use std::io::Write;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kapstone_domain::UtcTs;
use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_store::fhir::{
    self as store, AppointmentRow, ConsentRow, ConsultationRow, EventRow, ExportJob, Filter, LocationRow, PatientRow,
    ResponseRow, SessionRow, SourceRow, StaffRow,
};
use kapstone_store::{Db, audit};
use serde_json::{Value, json};
use uuid::Uuid;

use super::resources::{self as res, Ctx, Kind};
use super::search::{self, Part};
use super::{Fhir, FhirError, outcome};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// The types a system-level export writes, in order.
pub const SYSTEM_TYPES: [Kind; 13] = [
    Kind::Patient,
    Kind::Practitioner,
    Kind::Location,
    Kind::Appointment,
    Kind::Encounter,
    Kind::Condition,
    Kind::AllergyIntolerance,
    Kind::MedicationStatement,
    Kind::MedicationAdministration,
    Kind::Observation,
    Kind::Questionnaire,
    Kind::QuestionnaireResponse,
    Kind::Consent,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    System,
    Patient,
    Group(Uuid),
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::System => "system",
            Level::Patient => "patient",
            Level::Group(_) => "group",
        }
    }

    fn allows(self, k: Kind) -> bool {
        SYSTEM_TYPES.contains(&k) && (self == Level::System || k.in_patient_compartment())
    }
}

/// Reads `_type` and `_outputFormat` from the query and, for POST, a `Parameters` body.
fn parse_request(level: Level, raw: Option<&str>, body: &[u8]) -> Result<Vec<Kind>, FhirError> {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| FhirError::invalid(None, "the query string is malformed"))?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let p: Value = serde_json::from_slice(body)
            .map_err(|_| FhirError::invalid(None, "the body must be a FHIR Parameters resource"))?;
        if p["resourceType"] != "Parameters" {
            return Err(FhirError::invalid(Some("resourceType"), "the body must be a FHIR Parameters resource"));
        }
        for param in p["parameter"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap_or_default().to_owned();
            let value = param["valueString"].as_str().or_else(|| param["valueCode"].as_str()).unwrap_or_default();
            pairs.push((name, value.to_owned()));
        }
    }
    let mut types = Vec::new();
    for (name, value) in &pairs {
        match name.as_str() {
            "_type" => {
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let kind = Kind::parse(t).filter(|k| level.allows(*k)).ok_or_else(|| {
                        FhirError::not_supported(Some("_type"), format!("`{t}` cannot be exported at this level"))
                    })?;
                    if !types.contains(&kind) {
                        types.push(kind);
                    }
                }
            }
            "_outputFormat" => {
                if !matches!(value.as_str(), "application/fhir+ndjson" | "application/ndjson" | "ndjson") {
                    return Err(FhirError::not_supported(Some("_outputFormat"), "only NDJSON is written"));
                }
            }
            other => {
                return Err(FhirError::not_supported(
                    Some(other),
                    format!("unsupported export parameter `{other}` (supported: _type, _outputFormat)"),
                ));
            }
        }
    }
    if types.is_empty() {
        types = SYSTEM_TYPES.into_iter().filter(|k| level.allows(*k)).collect();
    }
    Ok(types)
}

fn wants_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("respond-async")))
}

async fn kick_off(
    state: &AppState,
    user: &CurrentUser,
    level: Level,
    uri: &str,
    (get, headers): (bool, &HeaderMap),
    raw: Option<&str>,
    body: &[u8],
) -> Result<Response, FhirError> {
    if get && !wants_async(headers) {
        return Err(FhirError::invalid(Some("Prefer"), "send `Prefer: respond-async` to start an export"));
    }
    let types = parse_request(level, raw, body)?;
    if let Level::Group(location) = level {
        let f = Filter { clinic: user.clinic.as_uuid(), eq: vec![store::Eq::Id(location)], ..Default::default() };
        if store::page::<LocationRow>(&state.db, &f, None, 1).await.map_err(AppError::from)?.is_empty() {
            return Err(FhirError::not_found(format!("Group/{location} is not known (groups are location ids)")));
        }
    }
    crate::app::reauth::before_export(state, user).await?;
    let names: Vec<&str> = types.iter().map(|k| k.as_str()).collect();
    let names = names.join(",");
    let request_url = format!("{}{uri}", state.config.public_url.trim_end_matches('/'));
    let mut tx = state.db.begin().await.map_err(AppError::from)?;
    let id = store::insert_job(
        &mut tx,
        &store::NewExportJob {
            clinic: user.clinic.as_uuid(),
            requester: user.id.as_uuid(),
            level: level.as_str(),
            group: match level {
                Level::Group(g) => Some(g),
                _ => None,
            },
            types: &names,
            request_url: &request_url,
            at: UtcTs::now(),
        },
    )
    .await
    .map_err(AppError::from)?;
    let mut e = user.event(AuditAction::FhirExportRequested, "fhir_export", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some(format!("{} export of {names}", level.as_str()));
    audit::append(&mut tx, &e).await.map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    tracing::info!(job = %id, level = level.as_str(), "FHIR export queued");
    let runner = state.clone();
    tokio::spawn(async move { run_pending(&runner).await });
    let status_url = format!("{}/$export-status/{id}", search::ctx(state).base);
    let mut r =
        Fhir(StatusCode::ACCEPTED, outcome("information", "informational", "export queued", None)).into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(r)
}

fn respond(r: Result<Response, FhirError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

pub async fn system_get(
    State(state): State<AppState>,
    user: CurrentUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    respond(kick_off(&state, &user, Level::System, &uri.to_string(), (true, &headers), q.as_deref(), b"").await)
}

pub async fn system_post(
    State(state): State<AppState>,
    user: CurrentUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    respond(kick_off(&state, &user, Level::System, &uri.to_string(), (false, &headers), q.as_deref(), &body).await)
}

pub async fn patient_get(
    State(state): State<AppState>,
    user: CurrentUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    respond(kick_off(&state, &user, Level::Patient, &uri.to_string(), (true, &headers), q.as_deref(), b"").await)
}

pub async fn patient_post(
    State(state): State<AppState>,
    user: CurrentUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    respond(kick_off(&state, &user, Level::Patient, &uri.to_string(), (false, &headers), q.as_deref(), &body).await)
}

fn group_id(raw: &str) -> Result<Uuid, FhirError> {
    Uuid::try_parse(raw).map_err(|_| FhirError::invalid(Some("id"), "a Group id is a location id"))
}

pub async fn group_get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let run = async {
        let level = Level::Group(group_id(&id)?);
        kick_off(&state, &user, level, &uri.to_string(), (true, &headers), q.as_deref(), b"").await
    };
    respond(run.await)
}

pub async fn group_post(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let run = async {
        let level = Level::Group(group_id(&id)?);
        kick_off(&state, &user, level, &uri.to_string(), (false, &headers), q.as_deref(), &body).await
    };
    respond(run.await)
}

/// The requester's own job; anyone else's is "not found".
async fn own_job(state: &AppState, user: &CurrentUser, id: &str) -> Result<ExportJob, FhirError> {
    let id = Uuid::try_parse(id).map_err(|_| FhirError::invalid(Some("id"), "not an export job id"))?;
    store::own_job(&state.db, user.clinic.as_uuid(), user.id.as_uuid(), id)
        .await
        .map_err(AppError::from)?
        .ok_or_else(|| FhirError::not_found("no such export job of yours"))
}

/// `GET /fhir/R4/$export-status/{id}`
pub async fn status(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> Response {
    let run = async {
        let job = own_job(&state, &user, &id).await?;
        match job.status.as_str() {
            "queued" | "running" => {
                let mut r = StatusCode::ACCEPTED.into_response();
                let progress = job.progress.as_deref().unwrap_or("queued");
                if let Ok(v) = HeaderValue::from_str(progress) {
                    r.headers_mut().insert("x-progress", v);
                }
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Ok(r)
            }
            "failed" => Ok(Fhir(
                StatusCode::INTERNAL_SERVER_ERROR,
                outcome("error", "exception", job.error.as_deref().unwrap_or("the export failed"), None),
            )
            .into_response()),
            _ => {
                let base = search::ctx(&state).base;
                let files: Vec<Value> = serde_json::from_str(job.output.as_deref().unwrap_or("[]")).unwrap_or_default();
                let output: Vec<Value> = files
                    .iter()
                    .map(|f| {
                        json!({
                            "type": f["type"],
                            "url": format!("{base}/$export-file/{}/{}", job.id, f["file"].as_str().unwrap_or_default()),
                            "count": f["count"],
                        })
                    })
                    .collect();
                let body = json!({
                    "transactionTime": job.requested_at.0.rfc3339(),
                    "request": job.request_url,
                    "requiresAccessToken": true,
                    "output": output,
                    "error": [],
                });
                let mut r = (StatusCode::OK, body.to_string()).into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(r)
            }
        }
    };
    respond(run.await)
}

/// `GET /fhir/R4/$export-file/{id}/{file}`: one NDJSON file, streamed from disk.
pub async fn file(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let run = async {
        let job = own_job(&state, &user, &id).await?;
        let files: Vec<Value> = serde_json::from_str(job.output.as_deref().unwrap_or("[]")).unwrap_or_default();
        let listed = job.status == "completed" && files.iter().any(|f| f["file"].as_str() == Some(file.as_str()));
        if !listed {
            return Err(FhirError::not_found("no such file in this export"));
        }
        let path = job_dir(&state, job.id).join(&file);
        let handle = tokio::fs::File::open(&path).await.map_err(|e| AppError::Internal(e.into()))?;
        let mut e = user.event(AuditAction::FhirExportDownloaded, "fhir_export", Outcome::Success);
        e.entity_id = Some(format!("{}/{file}", job.id));
        state.read_audit.record(e).await.map_err(AppError::from)?;
        let stream = futures_util::stream::unfold(handle, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0_u8; 64 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let mut r = Body::from_stream(stream).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+ndjson"));
        Ok(r)
    };
    respond(run.await)
}

fn job_dir(state: &AppState, id: Uuid) -> PathBuf {
    state.config.export_dir.join(id.to_string())
}

/// Runs queued jobs until none is left; safe to call from several processes at once.
pub async fn run_pending(state: &AppState) -> usize {
    let mut done = 0;
    loop {
        let now = UtcTs::now();
        let job = match store::claim_job(&state.db, now, now.plus(time::Duration::hours(1))).await {
            Ok(Some(job)) => job,
            Ok(None) => return done,
            Err(e) => {
                let id = AppError::from(e).log();
                tracing::warn!(correlation = %id, "export claim failed");
                return done;
            }
        };
        tracing::info!(job = %job.id, "FHIR export started");
        let result = run_job(state, &job).await;
        let (output, error, reason) = match &result {
            Ok((files, total, secs)) => {
                (Some(files.to_string()), None, format!("{total} resources in {secs:.1} s: {files}"))
            }
            Err(e) => {
                let id = e.log();
                (None, Some(format!("the export failed (reference {id})")), "failed".to_owned())
            }
        };
        if let Err(e) = finish(state, &job, output.as_deref(), error.as_deref(), reason).await {
            let id = e.log();
            tracing::warn!(correlation = %id, job = %job.id, "recording the end of an export failed");
        }
        done += 1;
    }
}

async fn finish(
    state: &AppState,
    job: &ExportJob,
    output: Option<&str>,
    error: Option<&str>,
    reason: String,
) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    store::finish_job(&mut tx, job.id, output, error, UtcTs::now()).await?;
    let outcome = if error.is_some() { Outcome::Failure } else { Outcome::Success };
    let mut e = NewAuditEvent::new(AuditAction::FhirExportCompleted, "fhir_export", outcome);
    e.clinic_id = Some(kapstone_domain::ClinicId::from_uuid(job.clinic_id));
    e.actor_user_id = Some(kapstone_domain::UserId::from_uuid(job.requester));
    e.entity_id = Some(job.id.to_string());
    e.reason = Some(reason.chars().take(1000).collect());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes one file per type; returns the manifest entries, the total and the seconds taken.
async fn run_job(state: &AppState, job: &ExportJob) -> Result<(Value, u64, f64), AppError> {
    let started = std::time::Instant::now();
    let dir = job_dir(state, job.id);
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Internal(e.into()))?;
    let filter = Filter {
        clinic: job.clinic_id,
        location_group: if job.level == "group" { job.group_id } else { None },
        ..Default::default()
    };
    let ctx = search::ctx(state);
    let kinds: Vec<Kind> = job.types.split(',').filter_map(Kind::parse).collect();
    let mut files = Vec::new();
    let mut total = 0;
    for (n, kind) in kinds.iter().enumerate() {
        let name = format!("{}.ndjson", kind.as_str());
        let path = dir.join(&name);
        let count = export_type(&state.db, &ctx, *kind, &filter, &path).await?;
        if count == 0 {
            let _ = std::fs::remove_file(&path);
        } else {
            files.push(json!({ "type": kind.as_str(), "file": name, "count": count }));
            total += count;
        }
        let progress = format!("{} of {} types written", n + 1, kinds.len());
        store::job_progress(&state.db, job.id, &progress).await?;
    }
    Ok((Value::Array(files), total, started.elapsed().as_secs_f64()))
}

/// Streams every resource of `kind` that `filter` selects into the NDJSON file at `path`.
pub async fn export_type(
    db: &Db,
    ctx: &Ctx,
    kind: Kind,
    filter: &Filter,
    path: &std::path::Path,
) -> Result<u64, AppError> {
    let file = std::fs::File::create(path).map_err(|e| AppError::Internal(e.into()))?;
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut count = 0_u64;
    for part in search::parts(kind) {
        let mut line = |v: Value| -> std::io::Result<()> {
            serde_json::to_writer(&mut w, &v)?;
            w.write_all(b"\n")?;
            count += 1;
            Ok(())
        };
        match part {
            Part::Patients => each::<PatientRow>(db, filter, &mut |r| line(res::people::patient(&r))).await?,
            Part::Staff => each::<StaffRow>(db, filter, &mut |r| line(res::people::practitioner(&r))).await?,
            Part::Locations => each::<LocationRow>(db, filter, &mut |r| line(res::people::location(&r))).await?,
            Part::Appointments => {
                each::<AppointmentRow>(db, filter, &mut |r| line(res::schedule::appointment(&r))).await?
            }
            Part::Sessions => each::<SessionRow>(db, filter, &mut |r| line(res::schedule::encounter(&r))).await?,
            Part::Consultations => {
                each::<ConsultationRow>(db, filter, &mut |r| {
                    search::expand_consultation(kind, &r).into_iter().try_for_each(&mut line)
                })
                .await?
            }
            Part::Events => {
                each::<EventRow>(db, filter, &mut |r| {
                    search::expand_event(kind, &r).into_iter().try_for_each(&mut line)
                })
                .await?
            }
            Part::Responses => {
                each::<ResponseRow>(db, filter, &mut |r| {
                    search::expand_response(kind, ctx, &r).into_iter().try_for_each(&mut line)
                })
                .await?
            }
            Part::Consents => each::<ConsentRow>(db, filter, &mut |r| line(res::consent::consent(&r))).await?,
            Part::Questionnaires => {
                search::questionnaires(ctx)
                    .into_iter()
                    .try_for_each(&mut line)
                    .map_err(|e| AppError::Internal(e.into()))?;
            }
            Part::Audit => {}
        }
    }
    w.flush().map_err(|e| AppError::Internal(e.into()))?;
    Ok(count)
}

async fn each<R: SourceRow>(
    db: &Db,
    filter: &Filter,
    f: &mut (dyn FnMut(R) -> std::io::Result<()> + Send),
) -> Result<(), AppError> {
    store::stream::<R>(db, filter, f).await?;
    Ok(())
}
