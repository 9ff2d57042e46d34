//! Scheduling over JSON: what booking needs (types, rooms, staff, locations), free slots,
//! appointments (book, list, cancel, no-show, reschedule), REMS enrolment, and the admin's
//! configuration (locations, rooms, types, hours).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kapstone_domain::scheduling::AppointmentType;
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::keyset::TimeKey;
use kapstone_store::scheduling::{self as store, AppointmentRow};
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::scheduling::{self as app, BookingRequest, ExceptionInput, HoursInput};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

pub async fn types(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let items: Vec<TypeView> = app::types(&state, &user)
        .await?
        .into_iter()
        .filter(|(_, _, active)| *active)
        .map(|(id, t, _)| TypeView { id, minutes: t.length.minutes(), kind: t })
        .collect();
    Ok(Json(page::item(&Items { items })))
}

/// An active appointment type (its current version).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct TypeView {
    pub id: Uuid,
    #[serde(flatten)]
    pub kind: kapstone_domain::scheduling::AppointmentType,
    /// The whole length in minutes (for a dosing visit: check-in, observation and recovery).
    pub minutes: i64,
}

pub async fn rooms(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let rows = store::rooms(&state.db, user.clinic).await.map_err(AppError::from)?;
    let items: Vec<RoomView> = rows
        .iter()
        .map(|r| RoomView { id: r.id, location_id: r.location_id, name: r.name.clone(), active: r.active })
        .collect();
    Ok(Json(page::item(&Items { items })))
}

/// `{"items": [...]}`: a whole list.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A room or chair.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RoomView {
    pub id: Uuid,
    pub location_id: Uuid,
    pub name: String,
    pub active: bool,
}

pub async fn locations(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let rows = store::locations(&state.db, user.clinic).await.map_err(AppError::from)?;
    let mut items = Vec::with_capacity(rows.len());
    for l in &rows {
        let setting = crate::app::rems::rems_setting(&state, &user, l.id).await?;
        let rems_setting = super::rems::setting_view(&setting);
        items.push(LocationView { id: l.id, name: l.name.clone(), time_zone: l.time_zone.clone(), rems_setting });
    }
    Ok(Json(page::item(&Items { items })))
}

/// A location with its IANA time zone and REMS setting.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct LocationView {
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
    pub rems_setting: super::rems::RemsSettingView,
}

pub async fn staff(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let people = app::staff(&state, &user).await?;
    let hours = store::hours(&state.db, user.clinic).await.map_err(AppError::from)?;
    let hhmm = |m: i32| format!("{:02}:{:02}", m / 60, m % 60);
    let items: Vec<StaffView> = people
        .iter()
        .map(|u| StaffView {
            id: u.id,
            name: u.display_name.clone(),
            role: u.role.clone(),
            hours: hours
                .iter()
                .filter(|h| h.user_id == u.id)
                .map(|h| WeeklyHours {
                    weekday: h.weekday,
                    location_id: h.location_id,
                    start: hhmm(h.start_minute),
                    end: hhmm(h.end_minute),
                })
                .collect(),
        })
        .collect();
    Ok(Json(page::item(&Items { items })))
}

/// A bookable person with their weekly hours.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StaffView {
    pub id: Uuid,
    pub name: String,
    #[schemars(with = "kapstone_domain::Role")]
    pub role: String,
    pub hours: Vec<WeeklyHours>,
}

/// One weekly window at a location, in its local time.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct WeeklyHours {
    /// 1 (Monday) to 7 (Sunday).
    pub weekday: i32,
    pub location_id: Uuid,
    /// HH:MM
    pub start: String,
    /// HH:MM (24:00 for midnight)
    pub end: String,
}

/// An appointment as the API answers it.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Appointment")]
pub struct AppointmentView {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The appointment type's code.
    #[serde(rename = "type")]
    pub type_code: Option<String>,
    pub type_name: Option<String>,
    pub kind: Option<kapstone_domain::scheduling::AppointmentKind>,
    pub start: jiff::Timestamp,
    pub end: jiff::Timestamp,
    pub location_id: Uuid,
    pub room_id: Option<Uuid>,
    pub staff_ids: Vec<Uuid>,
    #[schemars(extend("enum" = ["booked", "completed", "cancelled", "no_show", "rescheduled"]))]
    pub status: String,
    pub status_reason: Option<String>,
    pub rescheduled_from: Option<Uuid>,
    pub course_id: Option<Uuid>,
    /// Only on a booking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

fn appointment_view(a: &AppointmentRow, staff: &[Uuid], types: &[(Uuid, AppointmentType, bool)]) -> AppointmentView {
    let t = types.iter().find(|(id, _, _)| *id == a.type_id);
    AppointmentView {
        id: a.id,
        patient_id: a.patient_id,
        type_code: t.map(|(_, t, _)| t.code.clone()),
        type_name: t.map(|(_, t, _)| t.name.clone()),
        kind: t.map(|(_, t, _)| t.kind),
        start: app::to_jiff(a.start_at.0),
        end: app::to_jiff(a.end_at.0),
        location_id: a.location_id,
        room_id: a.room_id,
        staff_ids: staff.to_vec(),
        status: a.status.clone(),
        status_reason: a.status_reason.clone(),
        rescheduled_from: a.rescheduled_from,
        course_id: a.course_id,
        warnings: None,
    }
}

fn appointment_json(a: &AppointmentRow, staff: &[Uuid], types: &[(Uuid, AppointmentType, bool)]) -> Value {
    page::item(&appointment_view(a, staff, types))
}

/// The answer to a booking (or a rescheduling): 201 with the appointment as the booking stored
/// it, and the booking's warnings. A function of the use case's result alone, so it is stored with
/// the booking (see [`super::idempotency::answered`]).
fn booked_json(b: &app::Booked) -> Result<(StatusCode, Value), AppError> {
    let mut v = appointment_view(&b.stored.row, &b.stored.staff, &b.stored.types);
    v.warnings = Some(b.warnings.clone());
    Ok((StatusCode::CREATED, page::item(&v)))
}

/// The answer to a change of status: the appointment as the change stored it.
fn changed_json(s: &app::Stored) -> Result<Value, AppError> {
    Ok(appointment_json(&s.row, &s.staff, &s.types))
}

/// `POST /api/v1/appointments`: books; 409 names the clash, 422 names the field or gate.
pub async fn book(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(req): ApiJson<BookingRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(booked_json, app::book(&state, &user, &req, None)).await
}

/// `GET /api/v1/appointments?patient=&from=&to=&limit=&cursor=`: by start, a page at a time (see
/// [`page`]); `from`/`to` keep those that overlap the range.
pub async fn list(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let rows = app::page(&state, &user, &q.filter, q.after, q.limit).await?;
    let types = app::types(&state, &user).await?;
    let key = |(a, _): &(AppointmentRow, Vec<Uuid>)| TimeKey::new(a.start_at, a.id);
    Ok(Json(page::page(rows, q.limit, key, |(a, staff)| appointment_json(a, staff, &types))))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    #[serde(rename = "type")]
    kind: String,
    from: String,
    to: String,
    #[serde(default)]
    patient_id: Option<String>,
    #[serde(default)]
    location_id: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/appointments/slots?type=&from=YYYY-MM-DD&to=YYYY-MM-DD&patient_id=&location_id=`
/// (without a location, every location of the clinic is searched).
pub async fn slots(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<SlotQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let offers = app::free_slots(
        &state,
        &user,
        &q.kind,
        &q.from,
        &q.to,
        q.patient_id.as_deref(),
        q.location_id.as_deref(),
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(page::item(&Items { items: offers })))
}

fn appointment_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Cancel, no-show or attended: the appointment as it now is.
async fn set_status(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    status: &str,
    body: ReasonBody,
) -> ApiResult<Json<Value>> {
    let id = appointment_id(id)?;
    super::idempotency::answered_ok(changed_json, app::change(state, user, id, status, body.reason.as_deref())).await
}

pub async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    set_status(&state, &user, &id, "cancelled", body).await
}

pub async fn no_show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    set_status(&state, &user, &id, "no_show", body).await
}

/// `POST /api/v1/appointments/{id}/attended`: the patient came; the appointment is completed
/// (a course counts its completed sessions as done).
pub async fn attended(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    set_status(&state, &user, &id, "completed", body).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    start: String,
    reason: String,
    #[serde(default)]
    staff_ids: Option<Vec<String>>,
    #[serde(default)]
    room_id: Option<String>,
}

/// `POST /api/v1/appointments/{id}/reschedule`: the old one is kept as `rescheduled`, linked.
pub async fn reschedule(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RescheduleBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = appointment_id(&id)?;
    let old =
        store::appointment(&state.db, user.clinic, id).await.map_err(AppError::from)?.ok_or(AppError::NotFound)?;
    let staff = match body.staff_ids {
        Some(s) => s,
        None => store::staff_of(&state.db, &[id])
            .await
            .map_err(AppError::from)?
            .iter()
            .map(|(_, u)| u.to_string())
            .collect(),
    };
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(FieldError::new("reason", "give the reason for moving the appointment").into());
    }
    let req = BookingRequest {
        patient_id: old.patient_id.to_string(),
        kind: old.type_id.to_string(),
        start: body.start,
        staff_ids: staff,
        room_id: body.room_id.or(old.room_id.map(|r| r.to_string())),
        location_id: Some(old.location_id.to_string()),
        course: old.course_id,
    };
    super::idempotency::answered(booked_json, app::book(&state, &user, &req, Some((id, reason)))).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemsBody {
    enrolled_on: String,
    #[serde(default)]
    reference: Option<String>,
}

pub async fn rems(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RemsBody>,
) -> ApiResult<StatusCode> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    super::idempotency::answered_with_status(
        StatusCode::CREATED,
        app::record_rems(&state, &user, id, &body.enrolled_on, body.reference.as_deref()),
    )
    .await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    name: String,
    time_zone: String,
}

/// 201 with the new thing's id (see [`super::idempotency::answered`]).
fn created_id(id: &Uuid) -> Result<(StatusCode, Value), AppError> {
    Ok((StatusCode::CREATED, json!({"id": id})))
}

pub async fn create_location(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<LocationBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created_id, app::create_location(&state, &user, &b.name, &b.time_zone)).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomBody {
    location_id: String,
    name: String,
}

pub async fn create_room(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<RoomBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created_id, app::create_room(&state, &user, &b.location_id, &b.name)).await
}

pub async fn save_type(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(def): ApiJson<AppointmentType>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created_id, app::save_type(&state, &user, &def)).await
}

pub async fn set_hours(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(rows): ApiJson<Vec<HoursInput>>,
) -> ApiResult<StatusCode> {
    super::idempotency::answered_with_status(StatusCode::NO_CONTENT, app::set_hours(&state, &user, &id, &rows)).await
}

pub async fn add_exception(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(e): ApiJson<ExceptionInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |added: &app::ExceptionAdded| Ok((StatusCode::CREATED, page::item(added))),
        app::add_exception(&state, &user, &id, &e),
    )
    .await
}

/// `DELETE /api/v1/staff/{id}/exceptions/{exception_id}`.
pub async fn remove_exception(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((_, exception)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::remove_exception(&state, &user, &exception).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me/calendar-feed`: the signed-in staff member's secret iCalendar link.
pub async fn calendar_feed(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let url = crate::app::calendar::feed_url(&state, &user, false).await?;
    Ok(Json(page::item(&CalendarFeed { url })))
}

/// The signed-in staff member's secret iCalendar link.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CalendarFeed {
    pub url: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseBody {
    template: String,
    first_date: String,
    #[serde(default)]
    options: Option<kapstone_domain::course::CourseOptions>,
}

/// `POST /api/v1/patients/{id}/courses`: starts a course; 201 with its plan.
pub async fn start_course(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CourseBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let options = b.options.unwrap_or_default();
    super::idempotency::answered(
        |v: &crate::app::courses::CourseView| Ok((StatusCode::CREATED, serde_json::to_value(v).unwrap_or(Value::Null))),
        crate::app::courses::start(&state, &user, id, &b.template, &b.first_date, options),
    )
    .await
}

/// `GET /api/v1/patients/{id}/courses`: courses with plan and progress.
pub async fn courses(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    crate::app::patients::read(&state, &user, id).await?;
    let items = crate::app::courses::of_patient(&state, &user, id).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BookPlanBody {
    time: String,
    staff_ids: Vec<String>,
    #[serde(default)]
    room_id: Option<String>,
    /// Also book each planned integration session at the first free time that day.
    #[serde(default)]
    integration: bool,
}

/// `POST /api/v1/courses/{id}/book`: books the plan's future dosing sessions at a local time
/// (and, with `"integration": true`, its integration sessions). Answered with each date's outcome,
/// booked or refused, as the plan's one transaction stored them (issue 9).
pub async fn book_course(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<BookPlanBody>,
) -> ApiResult<Json<Value>> {
    let id = appointment_id(&id)?;
    let plan_json =
        |items: &Vec<crate::app::courses::PlanBooking>| -> Result<Value, AppError> { Ok(json!({ "items": items })) };
    super::idempotency::answered_ok(
        plan_json,
        crate::app::courses::book_plan(&state, &user, id, &b.time, &b.staff_ids, b.room_id.as_deref(), b.integration),
    )
    .await
}

/// `GET /api/v1/appointments.csv?from=YYYY-MM-DD&to=YYYY-MM-DD` (issue 8).
pub async fn csv(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<crate::app::schedule_csv::CsvQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(q) = q.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let (body, name) = crate::app::schedule_csv::schedule_csv(&state, &user, &q).await?;
    Ok(crate::app::schedule_csv::response(body, &name))
}
