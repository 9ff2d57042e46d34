//! The patient portal: the patient's own record only (the id comes from the session).

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::{Layout, PageResult, render, when};
use crate::app::patients;
use crate::auth::guard::CurrentUser;
use crate::content;
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
}

pub async fn home(State(state): State<AppState>, me: CurrentUser) -> PageResult<Html<String>> {
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
    render(&PortalPage {
        layout: Layout::for_user("My care", &me, "/portal"),
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
    let (id, _, def) = open_assignment(&state, &me, &id).await?;
    render(&questionnaire_page(&me, id, def, &[], None))
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
}

pub async fn sign_consent(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(doc): axum::extract::Path<String>,
    axum::extract::Form(f): axum::extract::Form<SignForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let d = content::consent(&doc).ok_or(crate::error::AppError::NotFound)?;
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
