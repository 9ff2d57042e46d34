//! The patient portal: the patient's own record only (the id comes from the session).

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::{Layout, PageResult, render, when};
use crate::app::patients;
use crate::auth::guard::CurrentUser;
use crate::content;
use crate::error::AppError;
use crate::state::AppState;
use kapstone_domain::instruments::Instrument;

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    layout: Layout,
    given_name: String,
    family_name: String,
    birth_date: String,
    mrn: String,
    views: Vec<(String, String)>,
    /// Open questionnaires: (assignment id, title).
    todo: Vec<(String, String)>,
    /// The treatment consent, when it needs signing: (document id, title).
    consent_due: Option<(String, String)>,
    upcoming: Vec<UpcomingView>,
    /// After a discharge: the last session's hand-out (KAP-SPEC 6.2).
    handout: Option<crate::app::rems::Handout>,
    notice: Option<String>,
    error: Option<String>,
}

/// An upcoming appointment as the patient sees it, with its preparation.
pub struct UpcomingView {
    pub id: String,
    pub when: String,
    pub what: String,
    pub dosing: bool,
    pub items: Vec<kapstone_domain::preparation::Item>,
    pub ride_done: bool,
    /// The ride as recorded (by the patient, or by staff on the phone), to confirm or change.
    pub escort: (String, String, String),
    pub intention: String,
    pub instructions: String,
    pub acknowledged: bool,
}

async fn upcoming(
    state: &AppState,
    me: &CurrentUser,
    patient: kapstone_domain::PatientId,
) -> Result<Vec<UpcomingView>, AppError> {
    use kapstone_domain::preparation::ItemStatus;
    let rows = kapstone_store::scheduling::appointments_of_patient(&state.db, patient).await?;
    let now = jiff::Timestamp::now();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|a| a.status == "booked" && crate::app::scheduling::to_jiff(a.end_at.0) > now)
        .collect();
    let types = crate::app::scheduling::types(state, me).await?;
    let prepared = crate::app::preparation::checklists(state, me, &rows).await?;
    let zones = crate::app::scheduling::zones(state, me.clinic).await?;
    Ok(rows
        .iter()
        .map(|a| {
            let tz = zones.of(a.location_id);
            let z = crate::app::scheduling::to_jiff(a.start_at.0).to_zoned(tz.clone());
            let what = types.iter().find(|(id, _, _)| *id == a.type_id).map_or_else(String::new, |t| t.1.name.clone());
            let prep = prepared.iter().find(|p| p.appointment.id == a.id);
            let items = prep.map(|p| p.items.clone()).unwrap_or_default();
            let item = |key: &str| items.iter().find(|i| i.key == key);
            UpcomingView {
                id: a.id.to_string(),
                when: format!(
                    "{} {:02}:{:02} ({}) at {}",
                    z.date(),
                    z.hour(),
                    z.minute(),
                    tz.iana_name().unwrap_or("UTC"),
                    zones.place(a.location_id)
                ),
                what,
                dosing: prep.is_some(),
                ride_done: item("ride_home").is_some_and(|i| i.status == ItemStatus::Done),
                escort: prep.and_then(|p| p.escort.clone()).unwrap_or_default(),
                intention: prep.and_then(|p| p.intention.clone()).unwrap_or_default(),
                instructions: item("instructions").map(|i| i.detail.clone()).unwrap_or_default(),
                acknowledged: item("instructions").is_some_and(|i| i.status == ItemStatus::Done),
                items,
            }
        })
        .collect())
}

#[derive(serde::Deserialize)]
pub struct HomeQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn home(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Query(q): axum::extract::Query<HomeQuery>,
) -> PageResult<Html<String>> {
    let notice = q.saved.map(|_| "Saved. Thank you.".to_owned());
    portal_home(&state, &me, notice, None).await
}

async fn portal_home(
    state: &AppState,
    me: &CurrentUser,
    notice: Option<String>,
    error: Option<String>,
) -> PageResult<Html<String>> {
    let (state, me) = (state.clone(), me.clone());
    let p = patients::read_own(&state, &me).await?;
    let views = patients::access_history(&state, &me, 20)
        .await?
        .into_iter()
        .map(|e| {
            let who = e.actor_role.map_or_else(
                || "Clinic system".to_owned(),
                |r| r.parse::<kapstone_domain::Role>().map(|r| r.label().to_owned()).unwrap_or(r),
            );
            (when(e.at), format!("{who} opened your record"))
        })
        .collect();
    let todo = kapstone_store::questionnaires::open_assignments(&state.db, p.patient_id())
        .await?
        .into_iter()
        .filter_map(|a| {
            let def = Instrument::parse(&a.instrument).and_then(|i| content::instrument(i).ok())?;
            Some((a.id.to_string(), def.title.clone()))
        })
        .collect();
    let consent_due = match crate::app::consents::status(&state, me.clinic, p.patient_id(), "kap-general").await? {
        (s, _) if s.is_valid() => None,
        _ => content::consent("kap-general").map(|d| (d.id.clone(), d.title.clone())),
    };
    let upcoming = upcoming(&state, &me, p.patient_id()).await?;
    let handout = crate::app::rems::own_handout(&state, &me).await?;
    render(&PortalPage {
        layout: Layout::for_user("My care", &me, "/portal"),
        upcoming,
        handout,
        notice,
        error,
        todo,
        consent_due,
        given_name: p.given_name,
        family_name: p.family_name,
        birth_date: p.birth_date.to_string(),
        mrn: p.mrn,
        views,
    })
}

/// One question of a portal questionnaire form.
pub struct QuestionView {
    pub name: String,
    pub number: String,
    pub text: String,
    pub selected: Option<i64>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal_questionnaire.html")]
struct QuestionnairePage {
    layout: Layout,
    id: String,
    title: String,
    stem: String,
    notice: String,
    options: Vec<(i64, String)>,
    questions: Vec<QuestionView>,
}

#[derive(Template)]
#[template(path = "portal_thanks.html")]
struct ThanksPage {
    layout: Layout,
    title: String,
    crisis: Option<&'static str>,
}

/// The open assignment `id` of this patient, with its instrument definition.
async fn open_assignment(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
) -> Result<(uuid::Uuid, Instrument, &'static content::InstrumentDefinition), crate::error::AppError> {
    use crate::error::AppError;
    let patient = me.patient.ok_or(AppError::Forbidden)?;
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let open = kapstone_store::questionnaires::open_assignments(&state.db, patient).await?;
    let a = open.into_iter().find(|a| a.id == id).ok_or(AppError::NotFound)?;
    let instrument = Instrument::parse(&a.instrument).ok_or(AppError::NotFound)?;
    Ok((id, instrument, content::instrument(instrument)?))
}

fn questionnaire_page(
    me: &CurrentUser,
    id: uuid::Uuid,
    def: &content::InstrumentDefinition,
    answers: &[Option<i64>],
    error: Option<(usize, String)>,
) -> QuestionnairePage {
    let questions = def
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| QuestionView {
            name: format!("item{}", i + 1),
            number: item.number.clone(),
            text: item.text.clone(),
            selected: answers.get(i).copied().flatten(),
            error: error.as_ref().filter(|(at, _)| *at == i).map(|(_, m)| m.clone()),
        })
        .collect();
    QuestionnairePage {
        layout: Layout::for_user(&def.title, me, "/portal"),
        id: id.to_string(),
        title: def.title.clone(),
        stem: def.stem.clone(),
        notice: def.notice.clone(),
        options: def.options.iter().filter_map(|o| o.value.as_i64().map(|v| (v, o.label.clone()))).collect(),
        questions,
    }
}

pub async fn questionnaire(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> PageResult<Html<String>> {
    let (id, instrument, def) = open_assignment(&state, &me, &id).await?;
    if instrument == Instrument::CssrsScreener {
        return render(&cssrs_page(&me, id, def, &[None; 7], &[0, 1, 5], None));
    }
    render(&questionnaire_page(&me, id, def, &[], None))
}

/// The C-SSRS screener in two steps without scripts: questions 1, 2 and 6 first; then 3–5 only
/// if 2 was yes and 6a only if 6 was yes (KAP-SPEC 7.4 skip logic). Earlier answers travel in
/// hidden fields.
#[derive(Template)]
#[template(path = "portal_cssrs.html")]
struct CssrsPage {
    layout: Layout,
    id: String,
    title: String,
    stem: String,
    notice: String,
    /// (field name, label, text, current answer) for the questions on this step.
    ask: Vec<(String, String, String, Option<bool>)>,
    /// (field name, "yes"/"no") carried from the first step.
    carried: Vec<(String, &'static str)>,
    error: Option<String>,
}

const CSSRS_FIELDS: [&str; 7] = ["q1", "q2", "q3", "q4", "q5", "q6", "q6a"];

fn cssrs_page(
    me: &CurrentUser,
    id: uuid::Uuid,
    def: &content::InstrumentDefinition,
    answers: &[Option<bool>; 7],
    ask: &[usize],
    error: Option<String>,
) -> CssrsPage {
    let carried = (0..7)
        .filter(|i| !ask.contains(i))
        .filter_map(|i| answers[i].map(|a| (CSSRS_FIELDS[i].to_owned(), if a { "yes" } else { "no" })))
        .collect();
    CssrsPage {
        layout: Layout::for_user(&def.title, me, "/portal"),
        id: id.to_string(),
        title: def.title.clone(),
        stem: def.stem.clone(),
        notice: def.notice.clone(),
        ask: ask
            .iter()
            .filter_map(|i| {
                def.items
                    .get(*i)
                    .map(|item| (CSSRS_FIELDS[*i].to_owned(), item.number.clone(), item.text.clone(), answers[*i]))
            })
            .collect(),
        carried,
        error,
    }
}

pub async fn submit_questionnaire(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: String,
) -> PageResult<axum::response::Response> {
    use crate::error::AppError;
    use axum::response::IntoResponse;
    let (id, instrument, def) = open_assignment(&state, &me, &id).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    if instrument == Instrument::CssrsScreener {
        let mut a = [None; 7];
        for (i, f) in CSSRS_FIELDS.iter().enumerate() {
            a[i] = pairs.iter().find(|(k, _)| k == f).and_then(|(_, v)| match v.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            });
        }
        // Step 1 must be complete before step 2 is asked.
        if let Some(missing) = [0usize, 1, 5].into_iter().find(|i| a[*i].is_none()) {
            let msg = format!("Please answer question {}.", def.items.get(missing).map_or("", |d| d.number.as_str()));
            let page = render(&cssrs_page(&me, id, def, &a, &[0, 1, 5], Some(msg)))?;
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        let mut follow_up = Vec::new();
        if a[1] == Some(true) {
            follow_up.extend([2, 3, 4]);
        }
        if a[5] == Some(true) {
            follow_up.push(6);
        }
        if let Some(missing) = follow_up.iter().find(|i| a[**i].is_none()) {
            // First arrival at step 2 shows no error; a step-2 post with a gap does.
            let started = follow_up.iter().any(|i| a[*i].is_some());
            let msg = started.then(|| {
                format!("Please answer question {}.", def.items.get(*missing).map_or("", |d| d.number.as_str()))
            });
            let status =
                if started { axum::http::StatusCode::UNPROCESSABLE_ENTITY } else { axum::http::StatusCode::OK };
            return Ok((status, render(&cssrs_page(&me, id, def, &a, &follow_up, msg))?).into_response());
        }
        // Questions not asked are sent as null, as the skip logic requires.
        for i in [2usize, 3, 4, 6] {
            if !follow_up.contains(&i) {
                a[i] = None;
            }
        }
        let patient = me.patient.ok_or(AppError::Forbidden)?;
        let sub = crate::app::questionnaires::Submission {
            instrument: instrument.as_str().into(),
            answers: a.iter().map(|x| x.map_or(serde_json::Value::Null, serde_json::Value::Bool)).collect(),
        };
        let scored = crate::app::questionnaires::submit_for(&state, &me, patient, sub, Some(id)).await?;
        return Ok(render(&ThanksPage {
            layout: Layout::for_user("Thank you", &me, "/portal"),
            title: def.title.clone(),
            crisis: scored.alert.map(|_| crate::app::questionnaires::CRISIS_RESOURCES),
        })?
        .into_response());
    }
    let answers: Vec<Option<i64>> = (1..=def.items.len())
        .map(|n| pairs.iter().find(|(k, _)| *k == format!("item{n}")).and_then(|(_, v)| v.parse().ok()))
        .collect();
    let patient = me.patient.ok_or(AppError::Forbidden)?;
    let sub = crate::app::questionnaires::Submission {
        instrument: instrument.as_str().into(),
        answers: answers.iter().map(|a| a.map_or(serde_json::Value::Null, serde_json::Value::from)).collect(),
    };
    match crate::app::questionnaires::submit_for(&state, &me, patient, sub, Some(id)).await {
        Ok(scored) => Ok(render(&ThanksPage {
            layout: Layout::for_user("Thank you", &me, "/portal"),
            title: def.title.clone(),
            crisis: scored.alert.map(|_| crate::app::questionnaires::CRISIS_RESOURCES),
        })?
        .into_response()),
        Err(AppError::InvalidItem { field, message }) => {
            let at = field.trim_start_matches("answers[").trim_end_matches(']').parse().unwrap_or(0);
            let msg = if message.contains("not answered") {
                "Please choose an answer.".to_owned()
            } else {
                super::sentence(&message)
            };
            let page = render(&questionnaire_page(&me, id, def, &answers, Some((at, msg))))?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal_consent.html")]
struct ConsentPage {
    layout: Layout,
    doc: &'static content::ConsentDocument,
    signed: bool,
    error: Option<String>,
}

pub async fn consent(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(doc): axum::extract::Path<String>,
) -> PageResult<Html<String>> {
    let d = content::consent(&doc).ok_or(crate::error::AppError::NotFound)?;
    let patient = me.patient.ok_or(crate::error::AppError::Forbidden)?;
    let (status, _) = crate::app::consents::status(&state, me.clinic, patient, &d.id).await?;
    render(&ConsentPage {
        layout: Layout::for_user(&d.title, &me, "/portal"),
        doc: d,
        signed: status.is_valid(),
        error: None,
    })
}

#[derive(serde::Deserialize)]
pub struct SignForm {
    #[serde(default)]
    signed_name: String,
    /// The hash of the text the page showed: a signature counts only for the words read.
    #[serde(default)]
    document_sha256: String,
}

pub async fn sign_consent(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(doc): axum::extract::Path<String>,
    axum::extract::Form(f): axum::extract::Form<SignForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let d = content::consent(&doc).ok_or(crate::error::AppError::NotFound)?;
    if f.document_sha256 != d.sha256() {
        return Err(crate::error::AppError::Conflict {
            field: "document",
            message: "this consent was updated while you were reading it; please read the new version".into(),
        }
        .into());
    }
    match crate::app::consents::sign_in_portal(&state, &me, &d.id, &f.signed_name).await {
        Ok(()) => Ok(axum::response::Redirect::to("/portal").into_response()),
        Err(crate::error::AppError::Invalid(e)) => {
            let page = render(&ConsentPage {
                layout: Layout::for_user(&d.title, &me, "/portal"),
                doc: d,
                signed: false,
                error: Some(super::sentence(&e.message)),
            })?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn appointment_id(raw: &str) -> Result<uuid::Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn after(
    state: &AppState,
    me: &CurrentUser,
    result: Result<(), AppError>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    match result {
        Ok(()) => Ok(axum::response::Redirect::to("/portal?saved=1").into_response()),
        Err(AppError::Invalid(e)) => {
            let page = portal_home(state, me, None, Some(super::sentence(&e.message))).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct RideForm {
    #[serde(default)]
    escort_name: String,
    #[serde(default)]
    escort_phone: String,
    #[serde(default)]
    escort_relationship: String,
}

/// `POST /portal/appointments/{id}/ride`: the patient names and confirms the ride home.
pub async fn ride(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Form(f): axum::extract::Form<RideForm>,
) -> PageResult<axum::response::Response> {
    let id = appointment_id(&id)?;
    let r =
        crate::app::preparation::set_escort(&state, &me, id, &f.escort_name, &f.escort_phone, &f.escort_relationship)
            .await;
    after(&state, &me, r).await
}

#[derive(serde::Deserialize)]
pub struct IntentionForm {
    #[serde(default)]
    intention: String,
}

/// `POST /portal/appointments/{id}/intention`.
pub async fn intention(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Form(f): axum::extract::Form<IntentionForm>,
) -> PageResult<axum::response::Response> {
    let id = appointment_id(&id)?;
    let r = crate::app::preparation::set_intention(&state, &me, id, &f.intention).await;
    after(&state, &me, r).await
}

/// `POST /portal/appointments/{id}/acknowledge`: the pre-session instructions were read.
pub async fn acknowledge(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> PageResult<axum::response::Response> {
    let id = appointment_id(&id)?;
    let r = crate::app::preparation::acknowledge(&state, &me, id).await;
    after(&state, &me, r).await
}

/// `GET /portal/appointments/{id}/calendar.ics`: the patient's own appointment for their calendar.
pub async fn ics(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> PageResult<axum::response::Response> {
    let id = appointment_id(&id)?;
    let body = crate::app::calendar::patient_event(&state, &me, id).await?;
    Ok(crate::app::calendar::ics_response(body, "appointment.ics"))
}

#[derive(serde::Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    note: String,
}

/// `POST /portal/appointments/{id}/request`: ask the clinic to move or cancel.
pub async fn request_change(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Form(f): axum::extract::Form<RequestForm>,
) -> PageResult<axum::response::Response> {
    let id = appointment_id(&id)?;
    let r = crate::app::preparation::request_change(&state, &me, id, &f.kind, &f.note).await;
    after(&state, &me, r).await
}
