//! The route table: every route of the server, each with the one [`Action`] that guards it.
//! The router is built only from this table, so a test can walk every route.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};
use kapstone_domain::permissions::Action;

use crate::state::AppState;
use crate::{api, html, ops};

pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    pub action: Action,
    pub handler: MethodRouter<AppState>,
}

fn r(method: Method, path: &'static str, action: Action, handler: MethodRouter<AppState>) -> RouteDef {
    RouteDef { method, path, action, handler }
}

pub fn table() -> Vec<RouteDef> {
    use Action::*;
    let (g, p) = (Method::GET, Method::POST);
    vec![
        // Operations and assets
        r(g.clone(), "/healthz", Public, get(ops::healthz)),
        r(g.clone(), "/static/app.css", Public, get(ops::stylesheet)),
        // Signing in and out
        r(g.clone(), "/login", Public, get(html::auth::login_page)),
        r(g.clone(), "/invite/{token}", Public, get(html::invite::show)),
        r(p.clone(), "/invite/{token}", Public, post(html::invite::accept)),
        r(p.clone(), "/login", Public, post(html::auth::login_submit)),
        r(g.clone(), "/login/mfa", CompleteSignIn, get(html::auth::mfa_page)),
        r(p.clone(), "/login/mfa", CompleteSignIn, post(html::auth::mfa_submit)),
        r(p.clone(), "/logout", SignOut, post(html::auth::logout)),
        // Staff pages
        r(g.clone(), "/", OwnAccount, get(html::home::home)),
        r(g.clone(), "/patients", ListPatients, get(html::patients::list)),
        r(p.clone(), "/safety-alerts/{id}/acknowledge", AcknowledgeSafetyAlert, post(html::home::acknowledge)),
        r(g.clone(), "/patients/new", RegisterPatient, get(html::patients::new_form)),
        r(p.clone(), "/patients", RegisterPatient, post(html::patients::create)),
        r(g.clone(), "/patients/{id}", ReadPatient, get(html::patients::show)),
        r(p.clone(), "/patients/{id}/assign", RecordQuestionnaire, post(html::patients::assign)),
        r(g.clone(), "/schedule", ReadSchedule, get(html::schedule::day)),
        r(g.clone(), "/schedule/book", BookAppointments, get(html::schedule::book_form)),
        r(p.clone(), "/schedule/book", BookAppointments, post(html::schedule::book)),
        r(p.clone(), "/schedule/appointments/{id}", BookAppointments, post(html::schedule::change)),
        r(g.clone(), "/schedule/appointments/{id}", ReadSchedule, get(html::schedule::appointment)),
        r(p.clone(), "/schedule/appointments/{id}/ride", BookAppointments, post(html::schedule::ride)),
        r(p.clone(), "/schedule/appointments/{id}/reschedule", BookAppointments, post(html::schedule::reschedule)),
        r(
            p.clone(),
            "/schedule/appointments/{id}/medication",
            WriteMedicationInstructions,
            post(html::schedule::medication),
        ),
        r(g.clone(), "/calendar/{token}", Public, get(html::schedule::feed)),
        r(g.clone(), "/patients/{id}/consultation", ReadClinicalRecord, get(html::consultation::show)),
        r(p.clone(), "/patients/{id}/consultation", RecordConsultation, post(html::consultation::save)),
        r(g.clone(), "/patients/{id}/eligibility", ReadClinicalRecord, get(html::eligibility::show)),
        r(p.clone(), "/patients/{id}/eligibility", SignEligibilityDecision, post(html::eligibility::sign)),
        r(p.clone(), "/patients/{id}/pathway", ManagePathway, post(html::patients::change_pathway)),
        r(p.clone(), "/patients/{id}/invite", RegisterPatient, post(html::patients::invite)),
        r(p.clone(), "/patients/{id}/consents", RecordConsent, post(html::patients::record_consent)),
        r(p.clone(), "/patients/{id}/rems", RecordConsent, post(html::patients::record_rems)),
        r(p.clone(), "/patients/{id}/consents/{consent}/revoke", RecordConsent, post(html::patients::revoke_consent)),
        // My account
        r(g.clone(), "/account", OwnAccount, get(html::account::show)),
        r(p.clone(), "/account/password", OwnAccount, post(html::account::change_password)),
        r(g.clone(), "/account/mfa", OwnAccount, get(html::account::mfa_setup)),
        r(p.clone(), "/account/mfa", OwnAccount, post(html::account::mfa_confirm)),
        r(p.clone(), "/account/mfa/disable", OwnAccount, post(html::account::mfa_disable)),
        r(p.clone(), "/account/sessions/{id}/end", OwnAccount, post(html::account::end_session)),
        r(p.clone(), "/account/calendar-feed", ReadSchedule, post(html::account::calendar_feed)),
        // Administration
        r(g.clone(), "/admin/users", ManageUsers, get(html::admin::users)),
        r(p.clone(), "/admin/users", ManageUsers, post(html::admin::create_user)),
        r(g.clone(), "/admin/users/{id}", ManageUsers, get(html::admin::user)),
        r(p.clone(), "/admin/users/{id}", ManageUsers, post(html::admin::update_user)),
        r(p.clone(), "/admin/users/{id}/password", ManageUsers, post(html::admin::reset_password)),
        r(p.clone(), "/admin/users/{id}/medical-director", ManageUsers, post(html::admin::set_medical_director)),
        r(g.clone(), "/admin/settings", ManageSettings, get(html::admin::settings_show)),
        r(p.clone(), "/admin/settings", ManageSettings, post(html::admin::settings_save)),
        r(g.clone(), "/admin/audit", ReadAudit, get(html::admin::audit)),
        r(g.clone(), "/admin/scheduling", ManageScheduling, get(html::admin_schedule::show)),
        r(p.clone(), "/admin/scheduling/locations", ManageScheduling, post(html::admin_schedule::add_location)),
        r(p.clone(), "/admin/scheduling/rooms", ManageScheduling, post(html::admin_schedule::add_room)),
        r(p.clone(), "/admin/scheduling/types", ManageScheduling, post(html::admin_schedule::save_type)),
        r(p.clone(), "/admin/scheduling/hours", ManageScheduling, post(html::admin_schedule::set_hours)),
        r(p.clone(), "/admin/scheduling/exceptions", ManageScheduling, post(html::admin_schedule::add_exception)),
        r(
            p.clone(),
            "/admin/scheduling/exceptions/{id}/remove",
            ManageScheduling,
            post(html::admin_schedule::remove_exception),
        ),
        r(g.clone(), "/admin/outbox", ManageUsers, get(html::admin::outbox)),
        r(g.clone(), "/admin/audit.csv", ReadAudit, get(html::admin::audit_csv)),
        // Patient portal
        r(g.clone(), "/portal", PortalSelf, get(html::portal::home)),
        r(g.clone(), "/portal/questionnaires/{id}", PortalSelf, get(html::portal::questionnaire)),
        r(g.clone(), "/portal/consents/{id}", PortalSelf, get(html::portal::consent)),
        r(p.clone(), "/portal/consents/{id}", PortalSelf, post(html::portal::sign_consent)),
        r(p.clone(), "/portal/questionnaires/{id}", PortalSelf, post(html::portal::submit_questionnaire)),
        r(p.clone(), "/portal/appointments/{id}/ride", PortalSelf, post(html::portal::ride)),
        r(p.clone(), "/portal/appointments/{id}/intention", PortalSelf, post(html::portal::intention)),
        r(p.clone(), "/portal/appointments/{id}/acknowledge", PortalSelf, post(html::portal::acknowledge)),
        r(g.clone(), "/portal/appointments/{id}/calendar.ics", PortalSelf, get(html::portal::ics)),
        r(p.clone(), "/portal/appointments/{id}/request", PortalSelf, post(html::portal::request_change)),
        // JSON API
        r(p.clone(), "/api/v1/auth/login", Public, post(api::auth::login)),
        r(p.clone(), "/api/v1/auth/logout", SignOut, post(api::auth::logout)),
        r(g.clone(), "/api/v1/auth/me", OwnAccount, get(api::auth::me)),
        r(g.clone(), "/api/v1/patients", ListPatients, get(api::patients::list)),
        r(p.clone(), "/api/v1/patients", RegisterPatient, post(api::patients::create)),
        r(g.clone(), "/api/v1/patients/{id}", ReadPatient, get(api::patients::read)),
        r(g.clone(), "/api/v1/portal/me", PortalSelf, get(api::patients::portal_me)),
        r(p.clone(), "/api/v1/portal/questionnaires", PortalSelf, post(api::questionnaires::submit_own)),
        r(
            p.clone(),
            "/api/v1/patients/{id}/questionnaires",
            RecordQuestionnaire,
            post(api::questionnaires::submit_for_patient),
        ),
        r(g.clone(), "/api/v1/safety-alerts", ReadSafetyAlerts, get(api::questionnaires::open_alerts)),
        r(
            p.clone(),
            "/api/v1/safety-alerts/{id}/acknowledge",
            AcknowledgeSafetyAlert,
            post(api::questionnaires::acknowledge),
        ),
        r(g.clone(), "/api/v1/eligibility/rules", ReadReferenceContent, get(api::eligibility::rules)),
        r(g.clone(), "/api/v1/codes/icd10cm", ReadReferenceContent, get(api::eligibility::diagnosis_codes)),
        r(
            g.clone(),
            "/api/v1/patients/{id}/consultation",
            ReadClinicalRecord,
            get(api::eligibility::read_consultation),
        ),
        r(
            Method::PUT,
            "/api/v1/patients/{id}/consultation",
            RecordConsultation,
            put(api::eligibility::save_consultation),
        ),
        r(g.clone(), "/api/v1/patients/{id}/eligibility", ReadClinicalRecord, get(api::eligibility::evaluate)),
        r(
            g.clone(),
            "/api/v1/patients/{id}/eligibility/decisions",
            ReadClinicalRecord,
            get(api::eligibility::decisions),
        ),
        r(
            p.clone(),
            "/api/v1/patients/{id}/eligibility/decisions",
            SignEligibilityDecision,
            post(api::eligibility::sign),
        ),
        r(g.clone(), "/api/v1/patients/{id}/pathway", ReadPatient, get(api::eligibility::pathway)),
        r(p.clone(), "/api/v1/patients/{id}/pathway/events", ManagePathway, post(api::eligibility::change_pathway)),
        r(g.clone(), "/api/v1/openapi.json", Public, get(api::openapi::document)),
        // Scheduling
        r(g.clone(), "/api/v1/appointment-types", ReadSchedule, get(api::scheduling::types)),
        r(p.clone(), "/api/v1/appointment-types", ManageScheduling, post(api::scheduling::save_type)),
        r(g.clone(), "/api/v1/rooms", ReadSchedule, get(api::scheduling::rooms)),
        r(p.clone(), "/api/v1/rooms", ManageScheduling, post(api::scheduling::create_room)),
        r(g.clone(), "/api/v1/locations", ReadSchedule, get(api::scheduling::locations)),
        r(p.clone(), "/api/v1/locations", ManageScheduling, post(api::scheduling::create_location)),
        r(g.clone(), "/api/v1/staff", ReadSchedule, get(api::scheduling::staff)),
        r(Method::PUT, "/api/v1/staff/{id}/hours", ManageScheduling, put(api::scheduling::set_hours)),
        r(p.clone(), "/api/v1/staff/{id}/exceptions", ManageScheduling, post(api::scheduling::add_exception)),
        r(
            Method::DELETE,
            "/api/v1/staff/{id}/exceptions/{exception_id}",
            ManageScheduling,
            delete(api::scheduling::remove_exception),
        ),
        r(g.clone(), "/api/v1/appointments", ReadSchedule, get(api::scheduling::list)),
        r(p.clone(), "/api/v1/appointments", BookAppointments, post(api::scheduling::book)),
        r(g.clone(), "/api/v1/appointments/slots", ReadSchedule, get(api::scheduling::slots)),
        r(p.clone(), "/api/v1/appointments/{id}/cancel", BookAppointments, post(api::scheduling::cancel)),
        r(p.clone(), "/api/v1/appointments/{id}/no-show", BookAppointments, post(api::scheduling::no_show)),
        r(p.clone(), "/api/v1/appointments/{id}/attended", BookAppointments, post(api::scheduling::attended)),
        r(p.clone(), "/api/v1/appointments/{id}/reschedule", BookAppointments, post(api::scheduling::reschedule)),
        r(p.clone(), "/api/v1/patients/{id}/rems-enrollment", RecordConsent, post(api::scheduling::rems)),
        r(g.clone(), "/api/v1/patients/{id}/courses", ReadSchedule, get(api::scheduling::courses)),
        r(p.clone(), "/api/v1/patients/{id}/courses", StartCourse, post(api::scheduling::start_course)),
        r(p.clone(), "/api/v1/courses/{id}/book", BookAppointments, post(api::scheduling::book_course)),
        r(g.clone(), "/patients/{id}/courses", ReadSchedule, get(html::courses::show)),
        // Dosing: the calculator and the protocols
        r(g.clone(), "/protocols", ReadReferenceContent, get(html::protocols::list)),
        r(g.clone(), "/protocols/{id}", ReadReferenceContent, get(html::protocols::show)),
        r(p.clone(), "/protocols/{id}", EditProtocols, post(html::protocols::revise)),
        r(p.clone(), "/protocols/{id}/calculate", CalculateDose, post(html::protocols::calculate)),
        r(p.clone(), "/api/v1/dose/calculate", CalculateDose, post(api::dosing::calculate)),
        r(g.clone(), "/api/v1/protocols", ReadReferenceContent, get(api::dosing::list)),
        r(g.clone(), "/api/v1/protocols/{id}", ReadReferenceContent, get(api::dosing::show)),
        r(p.clone(), "/api/v1/protocols/{id}/versions", EditProtocols, post(api::dosing::revise)),
        r(p.clone(), "/patients/{id}/courses", StartCourse, post(html::courses::start)),
        r(p.clone(), "/patients/{id}/courses/{course}/book", BookAppointments, post(html::courses::book)),
        r(g.clone(), "/api/v1/me/calendar-feed", ReadSchedule, get(api::scheduling::calendar_feed)),
        r(g.clone(), "/api/v1/users", ManageUsers, get(api::accounts::list)),
        r(p.clone(), "/api/v1/users", ManageUsers, post(api::accounts::create)),
        r(g, "/api/v1/audit", ReadAudit, get(api::audit::list)),
    ]
}
