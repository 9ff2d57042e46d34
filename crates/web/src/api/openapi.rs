//! `GET /api/v1/openapi.json`: the API described as OpenAPI 3.1.
//!
//! Paths come from the route table, so a route cannot exist undocumented (a test checks that
//! every `/api/v1` route has a description here); enumerations come from the domain's own lists.

use axum::Json;
use kapstone_domain::consultation::DrugClass;
use kapstone_domain::decision::Route;
use kapstone_domain::permissions::{Scope, roles_allowed};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::page::{DEFAULT_LIMIT, Filter, MAX_LIMIT};

/// Schemas derived from the Rust types the handlers serialize (responses, with shared types in
/// `components/schemas`) and deserialize (request bodies, inline), so the document follows the
/// code. Every object is closed (`additionalProperties: false`, see [`close`]), a field is
/// required when it is always written, and `Option` is `type: [..., "null"]` (JSON Schema 2020-12).
pub struct Derive {
    responses: SchemaGenerator,
    requests: SchemaGenerator,
}

/// A response schema derived from a type: only [`Derive`] makes one.
pub struct FromType(Value);

impl Derive {
    pub fn new() -> Self {
        let responses = SchemaSettings::draft2020_12()
            .for_serialize()
            .with(|s| {
                s.meta_schema = None;
                s.definitions_path = "/components/schemas".into();
            })
            .into_generator();
        let requests = SchemaSettings::draft2020_12()
            .for_deserialize()
            .with(|s| {
                s.meta_schema = None;
                s.inline_subschemas = true;
            })
            .into_generator();
        Self { responses, requests }
    }

    /// The schema of a response body that is a `T`, serialized.
    pub fn response<T: JsonSchema + serde::Serialize>(&mut self) -> FromType {
        FromType(self.responses.subschema_for::<T>().to_value())
    }

    /// A page of `T` (see [`super::page`]): `{items, next_cursor}`.
    pub fn page<T: JsonSchema + serde::Serialize>(&mut self) -> FromType {
        let item = self.responses.subschema_for::<T>().to_value();
        FromType(json!({"type":"object","required":["items","next_cursor"],
            "description":"One page; ask for the next with `?cursor=<next_cursor>` until it is null",
            "properties":{"items":{"type":"array","items":item},"next_cursor":{"type":["string","null"]}}}))
    }

    /// `{"items": [T]}`: a whole list.
    pub fn list<T: JsonSchema + serde::Serialize>(&mut self) -> FromType {
        let item = self.responses.subschema_for::<T>().to_value();
        FromType(json!({"type":"object","required":["items"],"properties":{"items":{"type":"array","items":item}}}))
    }

    /// The schema of a request body read as a `T`.
    pub fn request<T: JsonSchema + serde::de::DeserializeOwned>(&mut self) -> Option<Value> {
        let mut v = self.requests.subschema_for::<T>().to_value();
        into_branches(&mut v);
        close(&mut v, false);
        Some(v)
    }

    /// The shared response types, by name.
    fn components(&mut self) -> Map<String, Value> {
        let mut defs = self.responses.take_definitions(true);
        let names: Vec<String> = defs.keys().cloned().collect();
        // A tagged variant that refers to a closed type, with its tag beside the `$ref`: inline it,
        // so the tag and the fields are one closed object.
        for _ in 0..8 {
            let before = defs.clone();
            for name in &names {
                if let Some(v) = defs.get_mut(name) {
                    inline_tagged_refs(v, &before);
                }
            }
            if before == defs {
                break;
            }
        }
        for v in defs.values_mut() {
            close(v, false);
        }
        defs
    }
}

impl Default for Derive {
    fn default() -> Self {
        Self::new()
    }
}

/// `{"$ref": X, "properties": {tag}}` (serde's internally tagged newtype variant) becomes X's own
/// object with the tag added.
fn inline_tagged_refs(v: &mut Value, defs: &Map<String, Value>) {
    match v {
        Value::Object(o) => {
            let target = o.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"));
            if let (Some(name), true) = (target, o.contains_key("properties"))
                && let Some(Value::Object(def)) = defs.get(name)
            {
                let def = def.clone();
                o.remove("$ref");
                for (k, dv) in def {
                    match (k.as_str(), o.get_mut(&k)) {
                        ("properties", Some(Value::Object(p))) => {
                            if let Value::Object(dp) = dv {
                                for (pk, pv) in dp {
                                    p.entry(pk).or_insert(pv);
                                }
                            }
                        }
                        ("required", Some(Value::Array(r))) => {
                            if let Value::Array(dr) = dv {
                                for x in dr {
                                    if !r.contains(&x) {
                                        r.push(x);
                                    }
                                }
                            }
                        }
                        (_, Some(_)) => {}
                        (_, None) => {
                            o.insert(k, dv);
                        }
                    }
                }
            }
            for child in o.values_mut() {
                inline_tagged_refs(child, defs);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| inline_tagged_refs(c, defs)),
        _ => {}
    }
}

/// Closes every object schema: a field the type does not have is a validation failure. An object
/// merged from parts (a flattened enum: `oneOf` beside `properties`) is closed with
/// `unevaluatedProperties`, which sees the parts' fields, and the parts are left open.
fn close(v: &mut Value, open: bool) {
    let Value::Object(o) = v else { return };
    let is_object = o.contains_key("properties")
        || o.get("type").is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object"))));
    let merged = ["oneOf", "anyOf", "allOf", "$ref"].iter().any(|k| o.contains_key(*k));
    if is_object && !open && !o.contains_key("additionalProperties") && !o.contains_key("unevaluatedProperties") {
        let key = if merged { "unevaluatedProperties" } else { "additionalProperties" };
        o.insert(key.to_owned(), Value::Bool(false));
    }
    for (k, child) in o.iter_mut() {
        match k.as_str() {
            "properties" | "patternProperties" => {
                if let Value::Object(props) = child {
                    props.values_mut().for_each(|p| close(p, false));
                }
            }
            "oneOf" | "anyOf" | "allOf" => {
                if let Value::Array(parts) = child {
                    parts.iter_mut().for_each(|p| close(p, open || (is_object && merged)));
                }
            }
            "items" | "additionalProperties" | "not" | "then" | "else" | "if" => close(child, false),
            "prefixItems" => {
                if let Value::Array(parts) = child {
                    parts.iter_mut().for_each(|p| close(p, false));
                }
            }
            _ => {}
        }
    }
}

/// A struct that flattens a tagged enum (`{properties, oneOf: [variants]}`) becomes one closed
/// object per variant holding the struct's own fields too, rather than an open `oneOf` closed by
/// `unevaluatedProperties`: the same bodies are valid, and request generators (schemathesis) can
/// build examples from it.
fn into_branches(v: &mut Value) {
    let Value::Object(o) = v else { return };
    if o.get("oneOf").is_some_and(Value::is_array) && o.get("properties").is_some_and(Value::is_object) {
        distribute(o);
    }
    // A variant may flatten another tagged enum in turn.
    if let Some(Value::Array(branches)) = o.get_mut("oneOf") {
        branches.iter_mut().for_each(into_branches);
    }
}

fn distribute(o: &mut Map<String, Value>) {
    let Some(Value::Object(props)) = o.remove("properties") else { return };
    let required = o.remove("required");
    o.remove("type");
    o.remove("additionalProperties");
    let Some(Value::Array(branches)) = o.get_mut("oneOf") else { return };
    for branch in branches {
        let Value::Object(b) = branch else { continue };
        b.insert("type".into(), json!("object"));
        if let Value::Object(bp) = b.entry("properties").or_insert_with(|| json!({})) {
            for (k, p) in &props {
                bp.entry(k.clone()).or_insert_with(|| p.clone());
            }
        }
        if let Some(Value::Array(req)) = &required
            && let Value::Array(breq) = b.entry("required").or_insert_with(|| json!([]))
        {
            breq.extend(req.iter().cloned());
        }
    }
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn one_of(values: &[&str]) -> Value {
    let mut with_null: Vec<Value> = values.iter().map(|v| json!(v)).collect();
    with_null.push(Value::Null);
    json!({ "enum": with_null })
}

/// A description of one operation: summary, request schema, success status and schema.
struct Op {
    summary: &'static str,
    request: Option<Value>,
    status: &'static str,
    response: Value,
    /// The response schema is derived from the type the handler serializes ([`typed`]).
    derived: bool,
}

/// An operation whose response schema is written here (not JSON of a Rust type).
fn op(summary: &'static str, request: Option<Value>, status: &'static str, response: Value) -> Op {
    Op { summary, request, status, response, derived: false }
}

/// An operation whose response schema is derived from the type the handler serializes.
fn typed(summary: &'static str, request: Option<Value>, status: &'static str, response: FromType) -> Op {
    Op { summary, request, status, response: response.0, derived: true }
}

fn describe(method: &str, path: &str, g: &mut Derive) -> Option<Op> {
    Some(match (method, path) {
        ("POST", "/api/v1/auth/login") => typed(
            "Sign in; returns a bearer token",
            g.request::<super::auth::LoginBody>(),
            "200",
            g.response::<super::auth::LoginAnswer>(),
        ),
        ("POST", "/api/v1/auth/logout") => op("End this session", None, "204", Value::Null),
        ("GET", "/api/v1/auth/me") => typed("The signed-in account", None, "200", g.response::<super::auth::Me>()),
        ("POST", "/api/v1/auth/reauth") => typed(
            "Re-authenticate this session (password, and totp_code when enrolled) before signing, witnessing or exporting",
            g.request::<super::auth::ReauthBody>(),
            "200",
            g.response::<super::auth::Reauthenticated>(),
        ),
        ("GET", "/api/v1/patients") => typed(
            "Patients by family name, then given name, a page at a time; ?q= searches by name, MRN, date of birth or phone",
            None,
            "200",
            g.page::<super::patients::PatientView>(),
        ),
        ("POST", "/api/v1/patients") => typed(
            "Register a patient; an MRN is assigned",
            g.request::<crate::app::patients::NewPatientInput>(),
            "201",
            g.response::<super::patients::PatientView>(),
        ),
        ("GET", "/api/v1/patients/{id}") => {
            typed("One patient (audited read)", None, "200", g.response::<super::patients::PatientView>())
        }
        ("GET", "/api/v1/portal/me") => {
            typed("The patient's own record (portal)", None, "200", g.response::<super::patients::PatientView>())
        }
        ("POST", "/api/v1/portal/questionnaires") => typed(
            "Submit a questionnaire as the signed-in patient; crisis_resources when the answers raised an alert",
            g.request::<crate::app::questionnaires::Submission>(),
            "201",
            g.response::<crate::app::questionnaires::ScoredView>(),
        ),
        ("POST", "/api/v1/patients/{id}/questionnaires") => typed(
            "Enter a questionnaire for a patient",
            g.request::<crate::app::questionnaires::Submission>(),
            "201",
            g.response::<crate::app::questionnaires::ScoredView>(),
        ),
        ("GET", "/api/v1/safety-alerts") => typed(
            "Open safety alerts, oldest first; ?from=&to= on when raised",
            None,
            "200",
            g.page::<super::questionnaires::AlertView>(),
        ),
        ("POST", "/api/v1/safety-alerts/{id}/acknowledge") => op(
            "Acknowledge an alert with what was done",
            Some(json!({"type":"object","required":["action_taken"],"properties":{"action_taken":{"type":"string"}}})),
            "204",
            Value::Null,
        ),
        ("GET", "/api/v1/eligibility/rules") => typed(
            "The eligibility rule set in force (KAP-SPEC section 3)",
            None,
            "200",
            g.response::<super::eligibility::RuleSetView<'static>>(),
        ),
        ("GET", "/api/v1/codes/icd10cm") => typed(
            "The shipped ICD-10-CM code table",
            None,
            "200",
            g.response::<super::eligibility::CodeTable<'static>>(),
        ),
        ("GET", "/api/v1/patients/{id}/consultation") => typed(
            "The current consultation (404 before the first save)",
            None,
            "200",
            g.response::<super::eligibility::ConsultationVersion>(),
        ),
        ("PUT", "/api/v1/patients/{id}/consultation") => typed(
            "Save a new version of the consultation. Send `If-Match: \"N\"` with the version you edited to refuse a \
             stale save (409).",
            g.request::<kapstone_domain::consultation::ConsultationInput>(),
            "200",
            g.response::<super::eligibility::ConsultationVersion>(),
        ),
        ("GET", "/api/v1/patients/{id}/eligibility") => typed(
            "Evaluate the eligibility rules on the current record",
            None,
            "200",
            g.response::<super::eligibility::EligibilityView<'static>>(),
        ),
        ("GET", "/api/v1/patients/{id}/eligibility/decisions") => typed(
            "Every signed decision and amendment, the one in force first",
            None,
            "200",
            g.list::<super::eligibility::DecisionView>(),
        ),
        ("POST", "/api/v1/patients/{id}/eligibility/decisions") => typed(
            "Sign the eligibility decision, or amend the one in force (prescribers)",
            g.request::<super::eligibility::SignBody>(),
            "201",
            g.response::<super::eligibility::DecisionView>(),
        ),
        ("GET", "/api/v1/patients/{id}/pathway") => {
            typed("Pathway stage and what is needed next", None, "200", g.response::<super::eligibility::PathwayView>())
        }
        ("POST", "/api/v1/patients/{id}/pathway/events") => typed(
            "Hold, resume, withdraw, complete or reopen the pathway",
            g.request::<super::eligibility::PathwayBody>(),
            "201",
            g.response::<super::eligibility::PathwayView>(),
        ),
        ("GET", "/api/v1/openapi.json") => op(
            "This document",
            None,
            "200",
            json!({"type":"object","required":["openapi","info","paths","components"],"properties":{
                "openapi":{"const":"3.1.0"},"info":{"type":"object","required":["title","version"]},
                "paths":{"type":"object","additionalProperties":{"type":"object"}},
                "components":{"type":"object","required":["schemas"]},"security":{"type":"array"}}}),
        ),
        ("GET", "/api/v1/me/calendar-feed") => typed(
            "Your secret iCalendar feed link (made on first use; renew it on your account page)",
            None,
            "200",
            g.response::<super::scheduling::CalendarFeed>(),
        ),
        ("GET", "/api/v1/patients/{id}/courses") => typed(
            "Treatment courses with plan, sessions done and left, phase and review date",
            None,
            "200",
            g.list::<crate::app::courses::CourseView>(),
        ),
        ("POST", "/api/v1/patients/{id}/courses") => typed(
            "Start a course {template: SPRAVATO-TRD|IV-6|KAP-SL|KAP-IM, first_date, options?} for a route the decision allows (prescribers)",
            g.request::<super::scheduling::CourseBody>(),
            "201",
            g.response::<crate::app::courses::CourseView>(),
        ),
        ("POST", "/api/v1/courses/{id}/book") => typed(
            "Book the plan's future dosing sessions at {time: HH:MM local, staff_ids, room_id, integration?: also book each integration session at the first free time that day}; each date booked or refused with the reason",
            g.request::<super::scheduling::BookPlanBody>(),
            "200",
            g.list::<crate::app::courses::PlanBooking>(),
        ),
        ("GET", "/api/v1/appointment-types") => typed(
            "Active appointment types with length and staff needs",
            None,
            "200",
            g.list::<super::scheduling::TypeView>(),
        ),
        ("POST", "/api/v1/appointment-types") => typed(
            "Save an appointment type (admins); a known code gets a new version",
            g.request::<kapstone_domain::scheduling::AppointmentType>(),
            "201",
            g.response::<super::Created>(),
        ),
        ("GET", "/api/v1/rooms") => typed("Rooms and chairs", None, "200", g.list::<super::scheduling::RoomView>()),
        ("POST", "/api/v1/rooms") => typed(
            "Add a room or chair to a location (admins)",
            g.request::<super::scheduling::RoomBody>(),
            "201",
            g.response::<super::Created>(),
        ),
        ("POST", "/api/v1/dose/calculate") => typed(
            "Dose, volume and rates within the clinic's protocol: {protocol, weight_kg?, weight_measured_days_ago?, \
             dose_mg_per_kg | dose_mg, stock_mg_per_ml?, infusion_minutes?, bag_ml?, diluted_with_equal_volume?, \
             tablet_mg?, spravato?}; returns {dose_mg, volume_ml, rate_mg_per_min?, pump_ml_per_h?, zone: \
             normal|override|block, reasons}; 422 names the input at fault",
            g.request::<kapstone_domain::dose::DoseRequest>(),
            "200",
            g.response::<kapstone_domain::dose::DoseCalculation>(),
        ),
        ("GET", "/api/v1/protocols") => typed(
            "The dosing protocol in force for each route",
            None,
            "200",
            g.list::<super::dosing::ProtocolSummary>(),
        ),
        ("GET", "/api/v1/protocols/{id}") => typed(
            "A protocol in force, whole, with the clinic's saved versions",
            None,
            "200",
            g.response::<super::dosing::ProtocolDetail<'static>>(),
        ),
        ("POST", "/api/v1/protocols/{id}/versions") => typed(
            "Save a new version {definition, reason} (prescribers with the medical-director permission); 422 names \
             the JSON path refused (e.g. a Spravato value below the label)",
            g.request::<super::dosing::VersionBody>(),
            "201",
            g.response::<super::dosing::ProtocolSaved>(),
        ),
        ("POST", "/api/v1/appointments/{id}/session") => typed(
            "Open (or return) the dosing session of a dosing appointment; 201 when opened, 200 when it was open \
             already",
            None,
            "201",
            g.response::<crate::app::sessions::SessionDetail>(),
        ),
        ("GET", "/api/v1/sessions/{id}") => typed(
            "A dosing session: state, blocked_by [{code, message, unblocked_by}], checks [{kind, due_at, status}], \
             unacknowledged alerts, discharge criteria, the protocol version and the gate facts",
            None,
            "200",
            g.response::<crate::app::sessions::SessionDetail>(),
        ),
        ("POST", "/api/v1/sessions/{id}/events") => typed(
            "Record a step as {kind, ..., at?}: checked_in (links the pre-session screeners already answered), \
             escort_confirmed, reading, \
             pre_dose_bp_confirmed, hold_placed, hold_released, dose_verified, cleared_for_dosing, device_given, \
             administration_ended, alert_acknowledged, observation_flagged, adverse_event_recorded, \
             adverse_event_updated, experience_ended, discharge_assessment, discharged, aborted, progress_note; \
             422 names the rule (GATE-0x, MON-0x, DC-0x, role, state)",
            g.request::<super::sessions::EventBody>(),
            "201",
            g.response::<super::sessions::Recorded>(),
        ),
        ("POST", "/api/v1/sessions/{id}/vitals") => typed(
            "Vitals {systolic, diastolic, heart_rate, spo2, resp_rate, recorded_at?} (any subset that makes sense); \
             201 with the alerts raised; impossible values are 422 naming the field",
            g.request::<super::sessions::VitalsBody>(),
            "201",
            g.response::<super::sessions::Recorded>(),
        ),
        ("POST", "/api/v1/sessions/{id}/scores") => typed(
            "MOAA/S and CADSS {moaas?, cadss23? | cadss6?, recorded_at?}; 201 with the alerts raised",
            g.request::<super::sessions::ScoresBody>(),
            "201",
            g.response::<super::sessions::Recorded>(),
        ),
        ("POST", "/api/v1/sessions/{id}/dose-order") => typed(
            "The prescriber's order {request: dose request, override_reason?}, computed by the server from the \
             record; a block is refused, an override needs the reason",
            g.request::<super::sessions::OrderBody>(),
            "201",
            g.response::<super::sessions::Recorded>(),
        ),
        ("POST", "/api/v1/sessions/{id}/administrations") => typed(
            "Administration starts {product, ndc?, lot, expiry, dose_mg, route_snomed, at?}; 422 names the gate or \
             limit that refuses it",
            g.request::<super::sessions::AdministrationBody>(),
            "201",
            g.response::<super::sessions::Recorded>(),
        ),
        ("GET", "/api/v1/sessions/{id}/screenings") => typed(
            "The PHQ-9 and C-SSRS screener responses answered since the last visit {screenings: [{response_id, \
             instrument, total?, cssrs_risk?, submitted_at, via_portal, linked}]}",
            None,
            "200",
            g.response::<super::sessions::Screens>(),
        ),
        ("POST", "/api/v1/sessions/{id}/screenings") => typed(
            "Link a pre-session screener {response_id}; the score is read from the stored response; 422 names \
             response_id when it is not this patient's screener since the last visit",
            g.request::<super::sessions::ScreeningBody>(),
            "201",
            g.response::<super::sessions::Recorded>(),
        ),
        ("GET", "/api/v1/floor") => typed(
            "The floor board of ?location= (default the first): chairs with initials, phase, minutes since dose, \
             next check, overdue checks, unacknowledged alerts, staff",
            None,
            "200",
            g.response::<crate::app::floor::Board>(),
        ),
        ("GET", "/api/v1/sessions/{id}/rems-form") => typed(
            "The SPRAVATO REMS Patient Monitoring Form of a Spravato session (form version, fields with value and \
             display, missing_required, invalid), the session date, the due date (7 calendar days) and the status \
             {status: pending|overdue|submitted, due?, on?, late?}",
            None,
            "200",
            g.response::<crate::app::rems::FormView>(),
        ),
        ("POST", "/api/v1/sessions/{id}/rems-form/submissions") => typed(
            "Record that the form was submitted to the REMS {submitted_on: YYYY-MM-DD, confirmation?}; 422 names \
             submitted_on for a date in the future, before the session, or a session not yet ended",
            g.request::<super::rems::SubmissionBody>(),
            "201",
            g.response::<super::rems::Submitted>(),
        ),
        ("GET", "/api/v1/rems-forms") => typed(
            "Every finished Spravato session of the clinic with its REMS form status, most urgent first: not yet \
             submitted by session date (so overdue, oldest first, then due, soonest first), then submitted (latest \
             submission first)",
            None,
            "200",
            g.page::<crate::app::rems::DashboardRow>(),
        ),
        ("GET", "/api/v1/sessions/{id}/psychotherapy-notes") => typed(
            "The caller's own psychotherapy notes of a session, each with its amendments (KAP-SPEC 10): never \
             another author's; not part of the designated record set, so no other route returns them (audited \
             read, ids only)",
            None,
            "200",
            g.response::<crate::app::psychotherapy_notes::SessionNotes>(),
        ),
        ("POST", "/api/v1/sessions/{id}/psychotherapy-notes") => typed(
            "Write a psychotherapy note {text}, signed on save and readable by its author only; 422 names `text` \
             (empty, over 20000 characters, or control characters other than line breaks)",
            g.request::<super::psychotherapy_notes::NoteBody>(),
            "201",
            g.response::<crate::app::psychotherapy_notes::NoteView>(),
        ),
        ("POST", "/api/v1/psychotherapy-notes/{id}/amendments") => typed(
            "Amend one of your own signed psychotherapy notes {text: the corrected note, reason}; the original is \
             kept (TV-HIP-4). 404 for a note that is not yours; 422 names `text` or `reason`",
            g.request::<super::psychotherapy_notes::AmendmentBody>(),
            "201",
            g.response::<crate::app::psychotherapy_notes::NoteView>(),
        ),
        ("GET", "/api/v1/patients/{id}/notes") => typed(
            "The patient's record notes the caller may read: signed integration notes with their amendments \
             (KAP-SPEC 10, TV-HIP-4) and the caller's own drafts. Never psychotherapy notes, for anyone \
             (audited read, ids only)",
            None,
            "200",
            g.page::<crate::app::integration_notes::NoteView>(),
        ),
        ("POST", "/api/v1/sessions/{id}/integration-notes") => typed(
            "Open a draft integration note {summary, plan?} on the dosing session it follows (therapists); 422 \
             names `summary` or `plan`",
            g.request::<super::integration_notes::DraftBody>(),
            "201",
            g.response::<crate::app::integration_notes::NoteView>(),
        ),
        ("PUT", "/api/v1/integration-notes/{id}") => typed(
            "Edit your own draft {summary, plan?}; a signed note is refused with 422 `signed_note_immutable` \
             (amend it instead); another's draft is 404",
            g.request::<super::integration_notes::DraftBody>(),
            "200",
            g.response::<crate::app::integration_notes::NoteView>(),
        ),
        ("POST", "/api/v1/integration-notes/{id}/sign") => typed(
            "Sign your own draft: from now on it is immutable; 422 `signed_note_immutable` when already signed",
            None,
            "200",
            g.response::<crate::app::integration_notes::NoteView>(),
        ),
        ("POST", "/api/v1/integration-notes/{id}/amendments") => typed(
            "Amend a signed integration note {summary, plan?, reason, request_id?}: the original is kept \
             (TV-HIP-4); 422 `state` for a draft or an unchanged text, or names `reason`",
            g.request::<super::integration_notes::AmendmentBody>(),
            "201",
            g.response::<crate::app::integration_notes::NoteView>(),
        ),
        ("GET", "/api/v1/portal/journal") => typed(
            "The signed-in patient's own journal, newest first {items, next_cursor, prompt_session, prompts, \
             sharing_notice, crisis} (?from=&to= on when an entry was written)",
            None,
            "200",
            g.response::<super::journal::OwnJournalPage>(),
        ),
        ("POST", "/api/v1/portal/journal") => typed(
            "Write a private journal entry {text, session_id?, prompt_id?}; 422 names `text`, `session` (not one \
             of your dosing sessions) or `prompt`",
            g.request::<super::journal::NewBody>(),
            "201",
            g.response::<crate::app::journal::EntryView>(),
        ),
        ("PUT", "/api/v1/portal/journal/{id}") => typed(
            "Rewrite one of your private entries {text}; a shared entry is frozen (422 `state`)",
            g.request::<super::journal::EditBody>(),
            "200",
            g.response::<crate::app::journal::EntryView>(),
        ),
        ("DELETE", "/api/v1/portal/journal/{id}") => {
            op("Delete one of your private entries; a shared entry is kept (422 `state`)", None, "204", Value::Null)
        }
        ("POST", "/api/v1/portal/journal/{id}/share") => typed(
            "Share one of your entries with your care team; it is then frozen",
            None,
            "200",
            g.response::<crate::app::journal::EntryView>(),
        ),
        ("POST", "/api/v1/portal/journal/{id}/unshare") => typed(
            "Withdraw the sharing of an entry nobody on the care team has read yet (422 `state` once read)",
            None,
            "200",
            g.response::<crate::app::journal::EntryView>(),
        ),
        ("GET", "/api/v1/journal/queue") => typed(
            "Shared journal entries nobody on the care team has read yet, in the order they were shared (?from=&to= \
             on that time): ids and times only",
            None,
            "200",
            g.page::<crate::app::journal::QueueItem>(),
        ),
        ("GET", "/api/v1/journal/{id}") => typed(
            "Read a shared journal entry (the first read takes it out of the queue); a private entry is 404",
            None,
            "200",
            g.response::<crate::app::journal::EntryView>(),
        ),
        ("GET", "/api/v1/cs/registry") => typed(
            "The controlled-substance registry: each location's DEA registration and ledger settings, the products \
             and their lots (audited read)",
            None,
            "200",
            g.response::<crate::app::ledger::registry::Registry>(),
        ),
        ("PUT", "/api/v1/cs/locations/{id}/registration") => typed(
            "Record a location's DEA registration {dea_number, registrant, address, phone, contact, storage_note} and \
             settings {waste_witness_required (default true), retention_years (>= 2), holidays}; a new settings version",
            g.request::<crate::app::ledger::registry::RegistrationInput>(),
            "200",
            g.response::<crate::app::ledger::registry::RegistrationView>(),
        ),
        ("POST", "/api/v1/cs/products") => typed(
            "Add a product {name, substance: ketamine|esketamine, ndc, form: {form: solution|device_kit|tablets, ...}}",
            g.request::<crate::app::ledger::registry::ProductInput>(),
            "201",
            g.response::<kapstone_domain::ledger::CsProduct>(),
        ),
        ("POST", "/api/v1/cs/lots") => typed(
            "Register a lot already on the shelf {product, lot, expiry}, so the initial inventory can count it",
            g.request::<crate::app::ledger::registry::LotInput>(),
            "201",
            g.response::<kapstone_domain::ledger::Lot>(),
        ),
        ("POST", "/api/v1/cs/draws/{id}/administration") => typed(
            "Record what was given from a draw {amount_mg} when the session could not (stopped early); refused when \
             it is already recorded",
            g.request::<crate::app::ledger::transactions::AdministrationInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("GET", "/api/v1/cs/balance") => typed(
            "On hand per product and lot at ?location=: {items: [{product, lot, on_hand_mg, on_hand, expiry, ...}]}",
            None,
            "200",
            g.response::<super::ledger::Balance>(),
        ),
        ("GET", "/api/v1/cs/overview") => typed(
            "A location's ledger at a glance (?location=): balances, draws in use, inventory status, open discrepancies",
            None,
            "200",
            g.response::<crate::app::ledger::reports::Overview>(),
        ),
        ("GET", "/api/v1/cs/ledger") => typed(
            "A location's ledger entries in chain order (?location=&product=&lot=&kind=&patient=&from=&to=; from/to \
             are RFC 3339 times or dates at the location). ?after_seq=N keeps the entries after chain sequence \
             number N, for a client that keeps its own place in the chain; the cursor pages the same way",
            None,
            "200",
            g.response::<super::ledger::LedgerPage>(),
        ),
        ("GET", "/api/v1/cs/lot") => typed(
            "A lot's running balance, reconciliation since its last count and draws in use (?location=&product=&lot=)",
            None,
            "200",
            g.response::<crate::app::ledger::reports::LotReport>(),
        ),
        ("GET", "/api/v1/patients/{id}/dispensing") => typed(
            "The patient's dispensing log: the ledger entries naming the patient at every location, oldest first \
             (?from=&to= on when each happened; audited read)",
            None,
            "200",
            g.page::<crate::app::ledger::reports::EntryView>(),
        ),
        ("POST", "/api/v1/cs/receipts") => typed(
            "Record containers received {location, product, lot, expiry, supplier: {name, address, dea_number}, \
             containers, invoice?, received_at?}",
            g.request::<crate::app::ledger::transactions::ReceiptInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("POST", "/api/v1/cs/draws/{id}/waste") => typed(
            "Waste what is left of a dosing session's draw {method, witness: {email, password, totp_code?}, measure?}; \
             the witness authenticates here and cannot be the person recording",
            g.request::<crate::app::ledger::transactions::WasteInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("POST", "/api/v1/cs/destructions") => typed(
            "Record an on-site destruction (DEA Form 41) {location, product, lot, reason, full_containers, partial?, \
             method, witnesses: [two {email, password, totp_code?}]}",
            g.request::<crate::app::ledger::transactions::DestructionInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("GET", "/api/v1/cs/entries/{id}/form-41") => typed(
            "A destruction's DEA Form 41 content (audited read)",
            None,
            "200",
            g.response::<kapstone_domain::ledger::reports::Form41>(),
        ),
        ("POST", "/api/v1/cs/transfers") => typed(
            "Record a return to the supplier or a transfer {location, product, lot, purpose, recipient, measure, \
             document}",
            g.request::<crate::app::ledger::transactions::TransferInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("POST", "/api/v1/cs/adjustments") => typed(
            "Record an adjustment {location, product, lot, direction: increase|decrease, amount_mg, reason}",
            g.request::<crate::app::ledger::transactions::AdjustmentInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("POST", "/api/v1/cs/entries/{id}/reversal") => typed(
            "Reverse a mistaken entry {reason}; the entry stays in the ledger",
            g.request::<crate::app::ledger::transactions::ReversalInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::Appended>(),
        ),
        ("POST", "/api/v1/cs/counts") => typed(
            "Record a physical count or inventory {location, kind: count|initial|biennial, taken_at, lines: [{product, \
             lot, full_containers, opened}]}; returns the discrepancies opened",
            g.request::<crate::app::ledger::transactions::CountInput>(),
            "201",
            g.response::<crate::app::ledger::transactions::CountResult>(),
        ),
        ("GET", "/api/v1/cs/discrepancies") => typed(
            "Discrepancies with their notice and Form 106 timers (?open=true)",
            None,
            "200",
            g.list::<crate::app::ledger::discrepancies::DiscrepancyView>(),
        ),
        ("POST", "/api/v1/cs/discrepancies") => typed(
            "Open a discrepancy found other than by a count {location, description}",
            g.request::<crate::app::ledger::discrepancies::IncidentInput>(),
            "201",
            g.response::<crate::app::ledger::discrepancies::DiscrepancyView>(),
        ),
        ("GET", "/api/v1/cs/discrepancies/{id}") => typed(
            "One discrepancy with its record",
            None,
            "200",
            g.response::<crate::app::ledger::discrepancies::DiscrepancyView>(),
        ),
        ("POST", "/api/v1/cs/discrepancies/{id}/events") => typed(
            "Add to a discrepancy {kind: note_added|judged_not_significant|judged_theft_or_loss|notice_sent|\
             form106_submitted|closed, ...}",
            g.request::<kapstone_domain::ledger::discrepancy::DiscrepancyEvent>(),
            "201",
            g.response::<crate::app::ledger::discrepancies::DiscrepancyView>(),
        ),
        ("GET", "/api/v1/locations") => typed(
            "Locations with their IANA time zone and their REMS setting (certification, the address the REMS form asks \
             for)",
            None,
            "200",
            g.list::<super::scheduling::LocationView>(),
        ),
        ("PUT", "/api/v1/locations/{id}/rems-setting") => typed(
            "Set a location's REMS setting {rems_certified, address_line1?, address_line2?, city?, state?, zip?} \
             (admins): replaced as a whole, a blank address clears it; 422 names the part refused",
            g.request::<super::rems::RemsSettingBody>(),
            "200",
            g.response::<super::rems::RemsSettingView>(),
        ),
        ("POST", "/api/v1/locations") => typed(
            "Add a location (admins)",
            g.request::<super::scheduling::LocationBody>(),
            "201",
            g.response::<super::Created>(),
        ),
        ("GET", "/api/v1/staff") => {
            typed("Bookable staff with their weekly hours", None, "200", g.list::<super::scheduling::StaffView>())
        }
        ("PUT", "/api/v1/staff/{id}/hours") => op(
            "Replace a person's weekly hours: [{weekday 1-7, start HH:MM, end HH:MM, location_id?}] (admins)",
            Some(json!({"type":"array"})),
            "204",
            Value::Null,
        ),
        ("POST", "/api/v1/staff/{id}/exceptions") => typed(
            "Leave or extra hours on a date: {date, kind: leave|extra, start, end, note?} (admins); for leave, \
             `clashes` lists the booked appointments that fall in it",
            g.request::<crate::app::scheduling::ExceptionInput>(),
            "201",
            g.response::<crate::app::scheduling::ExceptionAdded>(),
        ),
        ("DELETE", "/api/v1/staff/{id}/exceptions/{exception_id}") => {
            op("Remove leave or extra hours (admins)", None, "204", Value::Null)
        }
        ("GET", "/api/v1/appointments") => typed(
            "Appointments by start; ?from=&to= keeps those overlapping the range, ?patient= one patient's",
            None,
            "200",
            g.page::<super::scheduling::AppointmentView>(),
        ),
        ("POST", "/api/v1/appointments") => typed(
            "Book: 409 `conflict` names what clashes; 422 names the field or the gate (eligibility_decision, route_not_allowed, consent, rems_acknowledgement, rems_enrollment)",
            g.request::<crate::app::scheduling::BookingRequest>(),
            "201",
            g.response::<super::scheduling::AppointmentView>(),
        ),
        ("GET", "/api/v1/appointments/slots") => typed(
            "Free slots: ?type=&from=YYYY-MM-DD&to=YYYY-MM-DD&patient_id=&location_id= (all locations without one)",
            None,
            "200",
            g.list::<crate::app::scheduling::Offer>(),
        ),
        ("POST", "/api/v1/appointments/{id}/cancel") => typed(
            "Cancel with {reason}; the appointment is kept",
            g.request::<super::scheduling::ReasonBody>(),
            "200",
            g.response::<super::scheduling::AppointmentView>(),
        ),
        ("POST", "/api/v1/appointments/{id}/attended") => typed(
            "Mark attended (completed) once started; a course counts it as done",
            g.request::<super::scheduling::ReasonBody>(),
            "200",
            g.response::<super::scheduling::AppointmentView>(),
        ),
        ("POST", "/api/v1/appointments/{id}/no-show") => typed(
            "Record a no-show",
            g.request::<super::scheduling::ReasonBody>(),
            "200",
            g.response::<super::scheduling::AppointmentView>(),
        ),
        ("POST", "/api/v1/appointments/{id}/reschedule") => typed(
            "Move to {start, reason, staff_ids?, room_id?}: a new appointment linked to the old, which is kept",
            g.request::<super::scheduling::RescheduleBody>(),
            "201",
            g.response::<super::scheduling::AppointmentView>(),
        ),
        ("POST", "/api/v1/patients/{id}/rems-enrollment") => op(
            "Record Spravato REMS enrolment {enrolled_on, reference?} (GATE-03)",
            Some(json!({"type":"object","required":["enrolled_on"]})),
            "201",
            Value::Null,
        ),
        // Issue 7: psychotherapy-note sharing.
        ("GET", "/api/v1/psychotherapy-notes/shared") => typed(
            "The psychotherapy notes shared with the caller by name now, newest share first (?from=&to= on when \
             shared; ids and times, no text; audited)",
            None,
            "200",
            g.page::<crate::app::psychotherapy_notes::SharedItem>(),
        ),
        ("GET", "/api/v1/psychotherapy-notes/{id}") => typed(
            "One psychotherapy note with its amendments, to its author or to the one colleague it is shared with \
             now; 404 for anyone else (audited read, ids only)",
            None,
            "200",
            g.response::<crate::app::psychotherapy_notes::NoteView>(),
        ),
        ("POST", "/api/v1/psychotherapy-notes/{id}/share") => typed(
            "Share one of your own psychotherapy notes with one named colleague {colleague_id}: a therapist or \
             prescriber of the clinic. 422 names `colleague_id`; 404 for a note that is not yours; 409 when \
             already shared",
            g.request::<super::psychotherapy_notes::ShareBody>(),
            "201",
            g.response::<crate::app::psychotherapy_notes::ShareView>(),
        ),
        ("DELETE", "/api/v1/psychotherapy-notes/{id}/share") => {
            op("Withdraw the share of one of your notes; 404 when there is none", None, "204", Value::Null)
        }
        // Issue 7: patients' rights.
        ("GET", "/api/v1/portal/record-requests") => typed(
            "The signed-in patient's own record requests with their deadlines, newest first",
            None,
            "200",
            g.page::<crate::app::record_requests::RequestView>(),
        ),
        ("POST", "/api/v1/portal/record-requests") => typed(
            "Ask for a copy of one's record {kind: access} (30 days, TV-HIP-1) or an amendment {kind: amendment, \
             requested} (60 days, TV-HIP-2)",
            g.request::<crate::app::record_requests::NewRequestInput>(),
            "201",
            g.response::<crate::app::record_requests::RequestView>(),
        ),
        ("POST", "/api/v1/portal/record-requests/{id}/steps") => typed(
            "The patient's statement of disagreement with a denied amendment {step: disagree, text}",
            g.request::<crate::app::record_requests::StepInput>(),
            "200",
            g.response::<crate::app::record_requests::RequestView>(),
        ),
        ("GET", "/api/v1/portal/record-requests/{id}/export") => typed(
            "The patient's own designated record set (everything but psychotherapy notes), once the clinic has \
             provided it",
            None,
            "200",
            g.response::<crate::app::record_requests::RecordExport>(),
        ),
        ("GET", "/api/v1/record-requests") => typed(
            "Open record requests of the clinic with their deadlines and status, in the order they were recorded \
                 (?from=&to= on that time)",
            None,
            "200",
            g.page::<crate::app::record_requests::RequestView>(),
        ),
        ("GET", "/api/v1/record-requests/{id}") => {
            typed("One record request", None, "200", g.response::<crate::app::record_requests::RequestView>())
        }
        ("POST", "/api/v1/record-requests/{id}/steps") => typed(
            "A step on a request {step: extend (reason) | provide | deny (basis) | accept (records) | rebut (text)}; \
             one extension, given before the first deadline",
            g.request::<crate::app::record_requests::StepInput>(),
            "200",
            g.response::<crate::app::record_requests::RequestView>(),
        ),
        ("GET", "/api/v1/record-requests/{id}/export") => typed(
            "The designated record set of an access request as JSON (TV-HIP-3: no psychotherapy notes)",
            None,
            "200",
            g.response::<crate::app::record_requests::RecordExport>(),
        ),
        ("GET", "/api/v1/patients/{id}/record-requests") => typed(
            "A patient's record requests, newest first (?from=&to= on when recorded)",
            None,
            "200",
            g.page::<crate::app::record_requests::RequestView>(),
        ),
        ("POST", "/api/v1/patients/{id}/record-requests") => typed(
            "Record a request on the patient's behalf {kind, requested?, received_on?}",
            g.request::<crate::app::record_requests::NewRequestInput>(),
            "201",
            g.response::<crate::app::record_requests::RequestView>(),
        ),
        ("GET", "/api/v1/measures/due") => typed(
            "Due and overdue questionnaires of patients on an active course (KAP-SPEC 7.10), by due time (so \
             overdue first; ?from=&to= on the due time): patient, course, instrument, occasion, window, status and \
             whether it is in the portal",
            None,
            "200",
            g.page::<crate::app::measures::DueMeasure>(),
        ),
        ("GET", "/api/v1/users") => typed(
            "Accounts of the clinic in the order they were made (?from=&to= on that time; ?patient= a patient's \
             portal account; admins)",
            None,
            "200",
            g.page::<super::accounts::AccountView>(),
        ),
        ("POST", "/api/v1/users") => typed(
            "Create an account (admins)",
            g.request::<crate::app::accounts::NewAccountInput>(),
            "201",
            g.response::<super::Created>(),
        ),
        ("GET", "/api/v1/audit") => typed(
            "Search the audit log (admins), newest first, a page at a time: ?user=&patient=&action=&from=&to= \
             (YYYY-MM-DD, UTC, both included)",
            None,
            "200",
            g.page::<super::audit::AuditEventView>(),
        ),
        // Measured outcomes, the clinic dashboard and the course review (issue 7)
        ("GET", "/api/v1/patients/{id}/outcomes") => typed(
            "A patient's PHQ-9, GAD-7 and PCL-5 outcomes (TV-PHQ-R1..R5): per instrument {baseline, latest, \
             change_pct, response, remission, series:[{at,total}]} plus why a response is not computed, the dosing \
             sessions (chart markers) and the clinic settings version whose definitions were used (clinicians; \
             audited read)",
            None,
            "200",
            g.response::<crate::app::outcomes::PatientOutcomes>(),
        ),
        ("GET", "/api/v1/portal/outcomes") => typed(
            "The signed-in patient's own outcomes, the same shape as /api/v1/patients/{id}/outcomes (audited)",
            None,
            "200",
            g.response::<crate::app::outcomes::PatientOutcomes>(),
        ),
        ("GET", "/api/v1/reports/outcomes") => typed(
            "The clinic dashboard for ?from=&to= (YYYY-MM-DD, `to` included; default the last 90 days) and \
             ?location= (a location id): active patients by stage, sessions held, response and remission at the end \
             of induction by route and protocol with n, median change, overdue measures (null with a note until the \
             measurement cadence exists), open safety alerts, REMS forms due. 422 names `from`, `to` or `location` \
             (prescribers and admins; audited). CSV: /reports/outcomes.csv",
            None,
            "200",
            g.response::<crate::app::outcomes::Dashboard>(),
        ),
        ("GET", "/api/v1/courses/{id}/reviews") => typed(
            "The reviews of a treatment course, oldest first: decision, reason, options after, next review, the \
             outcome summary decided on and the settings version",
            None,
            "200",
            g.list::<crate::app::outcomes::ReviewView>(),
        ),
        ("POST", "/api/v1/courses/{id}/reviews") => typed(
            "Record the course review {decision: continue|modify|stop, reason, options (modify)} (prescribers, \
             KAP-SPEC 2.1 stage 8). Append-only and audited; stop ends the course and cancels its future bookings. \
             422 names `decision`, `reason` or the option at fault; 409 when the course has ended",
            g.request::<crate::app::outcomes::ReviewInput>(),
            "201",
            g.response::<crate::app::outcomes::ReviewView>(),
        ),
        ("GET", "/api/v1/settings/outcomes") => typed(
            "The clinic's outcome definitions (baseline rule, response and remission thresholds, response only \
             from a moderate baseline; KAP-SPEC 7.1 CONFIG) and the re-review interval, with the settings version \
             (admins)",
            None,
            "200",
            g.response::<super::outcomes::OutcomeSettingsView>(),
        ),
        ("PUT", "/api/v1/settings/outcomes") => typed(
            "Save new outcome definitions {outcomes?, course_review?} as a new clinic settings version (admins); \
             422 names the setting out of range",
            g.request::<super::outcomes::SettingsBody>(),
            "200",
            g.response::<super::outcomes::OutcomeSettingsView>(),
        ),
        ("GET", "/api/v1/tokens") => typed(
            "The clinic's API tokens, newest first: name, prefix, scopes, expiry, last use, state (never the secret; \
             admins)",
            None,
            "200",
            g.page::<super::integrations::TokenItem>(),
        ),
        ("POST", "/api/v1/tokens") => typed(
            "Create an API token {name, scopes, expires_in_days 1-365}; the answer's `token` (kst_...) is shown \
             this once and stored only as its SHA-256 (admins)",
            g.request::<crate::app::integrations::NewTokenInput>(),
            "201",
            g.response::<super::integrations::NewToken>(),
        ),
        ("POST", "/api/v1/tokens/{id}/revoke") => {
            op("Revoke an API token: from now on it answers 401 (admins)", None, "204", Value::Null)
        }
        ("GET", "/api/v1/webhooks") => typed(
            "The clinic's webhook endpoints (admins)",
            None,
            "200",
            g.list::<crate::app::integrations::EndpointView>(),
        ),
        ("POST", "/api/v1/webhooks") => typed(
            "Register a webhook endpoint {url (http or https), events}; the answer's `secret` signs every delivery \
             (header Kapstone-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">) and is shown this once",
            g.request::<crate::app::integrations::NewEndpointInput>(),
            "201",
            g.response::<super::integrations::NewEndpoint>(),
        ),
        ("PUT", "/api/v1/webhooks/{id}/active") => op(
            "Switch an endpoint off (its deliveries wait) or on {active} (admins)",
            Some(json!({"type":"object","additionalProperties":false,"required":["active"],
                "properties":{"active":{"type":"boolean"}}})),
            "204",
            Value::Null,
        ),
        ("GET", "/api/v1/webhooks/deliveries") => typed(
            "Webhook deliveries, newest first (?from=&to= on when queued): event, payload (ids only), status \
             pending/delivered/failed, attempts, next attempt, last status code and error (admins)",
            None,
            "200",
            g.page::<crate::app::integrations::DeliveryView>(),
        ),
        ("POST", "/api/v1/webhooks/deliveries/{id}/redeliver") => {
            op("Send a delivery again now, with a fresh count of attempts (admins)", None, "202", Value::Null)
        }
        ("GET", "/api/v1/appointments.csv") => op(
            "The schedule as CSV for a spreadsheet (from, to: dates YYYY-MM-DD in the clinic's zone, at most 31 \
             days; audited)",
            None,
            "200",
            json!({"type":"string","contentMediaType":"text/csv"}),
        ),
        _ => return None,
    })
}

/// The schemas the operations refer to, directly or through each other; an outline no operation
/// uses any more is left out.
fn referenced_only(all: Value, paths: &Map<String, Value>) -> Value {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(name) =
                    o.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(name.to_owned());
                }
                o.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let Value::Object(all) = all else { return all };
    let mut todo = Vec::new();
    paths.values().for_each(|p| refs(p, &mut todo));
    let mut kept = Map::new();
    while let Some(name) = todo.pop() {
        if kept.contains_key(&name) {
            continue;
        }
        if let Some(schema) = all.get(&name) {
            refs(schema, &mut todo);
            kept.insert(name, schema.clone());
        }
    }
    Value::Object(kept)
}

fn schemas(derived: Map<String, Value>) -> Value {
    let mut v = core_schemas();
    if let Some(o) = v.as_object_mut() {
        // The types' own schemas replace the hand-written outlines of the same name.
        o.extend(derived);
    }
    v
}

fn core_schemas() -> Value {
    let flag = nullable("boolean");
    let conditions = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "One value per eligibility rule condition; null or absent means not recorded (a missing_data finding).",
        "properties": {
            "aneurysmal_vascular_disease": flag, "arteriovenous_malformation": flag,
            "intracerebral_hemorrhage_history": flag, "ketamine_hypersensitivity": flag,
            "pressure_risk_condition": one_of(&["none", "remote", "recent"]),
            "uncontrolled_hypertension": flag, "hypertensive_encephalopathy_history": flag,
            "raised_intracranial_pressure": flag,
            "intraocular_risk": one_of(&["none", "glaucoma_or_raised_iop", "open_globe_injury"]),
            "preeclampsia_or_eclampsia": flag,
            "psychotic_disorder": one_of(&["none", "history", "current"]),
            "current_mania": flag, "bipolar_currently_depressed": flag,
            "substance_use_disorder": one_of(&["none", "history", "active", "active_dissociative"]),
            "alcohol_use": flag,
            "hepatic": one_of(&["none", "disease_or_abnormal_lfts", "child_pugh_b", "child_pugh_c"]),
            "uncontrolled_hyperthyroidism": flag, "cystitis_or_urinary_symptoms": flag,
            "serious_reaction_to_ketamine": flag, "seizure_disorder": flag, "unable_to_consent": flag,
        }
    });
    let classes: Vec<&str> = DrugClass::ALL.iter().map(|c| c.as_str()).collect();
    let routes: Vec<&str> = Route::ALL.iter().map(|r| r.as_str()).collect();
    let number = nullable("number");
    json!({
        "Error": {"type":"object","required":["error"],"additionalProperties":false,"properties":{"error":{"type":"object","required":["code","message"],"additionalProperties":false,"properties":{
            "code":{"type":"string"},"message":{"type":"string"},"field":{"type":"string","description":"The input at fault, e.g. vitals.systolic_mmhg or medications[2].daily_dose_mg"}}}}},
        "Page": {"type":"object","required":["items","next_cursor"],"description":"One page of a list in a stable order. Ask for the next with `?cursor=<next_cursor>` (and the same filters) until `next_cursor` is null: each item comes exactly once.",
            "properties":{"items":{"type":"array"},"next_cursor":{"type":["string","null"],"description":"Opaque; null on the last page"}}},
        "Login": {"type":"object","required":["email","password"],"properties":{"email":{"type":"string"},"password":{"type":"string"},"totp_code":{"type":"string"}}},
        "NewPatient": {"type":"object","required":["given_name","family_name","birth_date","sex_at_birth"],"properties":{
            "given_name":{"type":"string"},"family_name":{"type":"string"},"birth_date":{"type":"string","format":"date"},
            "sex_at_birth":{"enum":["female","male","other","unknown"]},"gender_identity":{"type":"string"},"pronouns":{"type":"string"},
            "phone":{"type":"string"},"email":{"type":"string"},"address":{"type":"string"},
            "emergency_contact_name":{"type":"string"},"emergency_contact_phone":{"type":"string"}}},
        "Patient": {"type":"object","properties":{"id":{"type":"string","format":"uuid"},"mrn":{"type":"string"}}},
        "Consultation": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "mental_health_history": nullable("string"), "current_symptoms": nullable("string"),
                "treatment_goals": nullable("string"), "medical_history_notes": nullable("string"),
                "diagnoses": {"type":"array","items":{"type":"object","required":["code"],"properties":{"code":{"type":"string","description":"ICD-10-CM, from GET /api/v1/codes/icd10cm"}}}},
                "conditions": conditions,
                "medications_reconciled": {"type":"boolean","description":"The list is complete; until true, every interaction rule reports missing data"},
                "medications": {"type":"array","items":{"type":"object","required":["name","drug_class"],"additionalProperties":false,"properties":{
                    "name":{"type":"string"},"drug_class":{"enum":classes},"daily_dose_mg":number,
                    "diazepam_equivalent_mg":{"type":["number","null"],"description":"Benzodiazepines only: daily dose converted by the clinician (DDI-001)"}}}},
                "allergies": {"type":"array","items":{"type":"object","required":["substance","severity"],"properties":{
                    "substance":{"type":"string"},"reaction":nullable("string"),"severity":{"enum":["mild","moderate","severe"]}}}},
                "antidepressant_trials": {"type":"array","items":{"type":"object","required":["drug","max_daily_dose_mg","reached_minimum_labelled_dose","weeks_at_or_above_min_dose","adherence","outcome","current_episode"],"properties":{
                    "drug":{"type":"string"},"max_daily_dose_mg":{"type":"number"},"reached_minimum_labelled_dose":{"type":"boolean"},
                    "weeks_at_or_above_min_dose":{"type":"integer"},"adherence":{"enum":["good","partial","poor"]},
                    "outcome":{"enum":["non_response","partial","intolerance","response"]},"current_episode":{"type":"boolean"}}}},
                "substance_use_notes": nullable("string"),
                "pregnancy_status": one_of(&["not_pregnant", "pregnant", "not_applicable"]),
                "breastfeeding": flag,
                "vitals": {"type":"object","additionalProperties":false,"properties":{
                    "systolic_mmhg":{"type":["number","null"],"minimum":50,"maximum":300},
                    "diastolic_mmhg":{"type":["number","null"],"minimum":20,"maximum":200},
                    "heart_rate_bpm":{"type":["number","null"],"minimum":20,"maximum":250},
                    "spo2_percent":{"type":["number","null"],"minimum":50,"maximum":100},
                    "weight_kg":{"type":["number","null"],"minimum":20,"maximum":400},
                    "height_cm":{"type":["number","null"],"minimum":100,"maximum":250}}}
            }
        },
        "ConsultationVersion": {"type":"object","properties":{"version":{"type":"integer"},"recorded_at":{"type":"string"},
            "recorded_by":{"type":"string"},"diagnosis_table_version":{"type":"string"},"data":r("Consultation")}},
        "RuleSet": {"type":"object","properties":{"version":{"type":"string"},"rules":{"type":"array","items":{"type":"object","properties":{
            "id":{"type":"string"},"condition":{"type":"string"},"scope":{"enum":["esketamine","racemic","all"]},
            "severity":{"enum":["exclude","physician_review","precaution","info"]},"cases":{"type":"object"},
            "reads":{"type":"array","items":{"type":"string"}},"rationale":{"type":"string"},"source":{"type":"string"}}}}}},
        "Finding": {"type":"object","properties":{"rule_id":{"type":"string"},
            "severity":{"enum":["exclude","physician_review","missing_data","precaution","info"]},
            "scope":{"enum":["esketamine","racemic","all"]},"detail":{"type":"string"},"rationale":{"type":"string"},"source":{"type":"string"},
            "missing":{"type":"array","items":{"type":"string"}}}},
        "Eligibility": {"type":"object","properties":{"ruleset_version":{"type":"string"},"settings_version":{"type":"integer"},
            "outcome":{"enum":["excluded","needs_review","eligible_with_precautions","eligible"]},
            "outcome_by_product":{"type":"object","properties":{"esketamine":{"type":"string"},"racemic":{"type":"string"}}},
            "findings":{"type":"array","items":r("Finding")},
            "input_sha256":{"type":"string","description":"Send back when signing: a decision is refused (409) if the record changed since"},
            "consultation_version":{"type":["integer","null"]},"decision":{"oneOf":[r("Decision"),{"type":"null"}]}}},
        "DecisionRequest": {"type":"object","required":["input_sha256","verdict","summary"],"additionalProperties":false,"properties":{
            "input_sha256":{"type":"string"},"verdict":{"enum":["eligible","not_eligible"]},
            "routes":{"type":"array","items":{"type":"object","required":["route"],"properties":{"route":{"enum":routes},
                "course_template":{"type":["string","null"],"description":"KAP-SPEC 4.4: SPRAVATO-TRD, IV-6, KAP-IM, KAP-SL"}}}},
            "spravato_indication":one_of(&["trd","mdd_with_acute_suicidal_ideation"]),
            "dispositions":{"type":"array","items":{"type":"object","required":["rule_id","acceptable","reason"],"properties":{
                "rule_id":{"type":"string"},"acceptable":{"type":"boolean"},"reason":{"type":"string"}}}},
            "summary":{"type":"string"},
            "amends":{"type":["string","null"],"format":"uuid","description":"The decision in force, to amend it"},
            "amendment_reason":nullable("string")}},
        "Decision": {"type":"object","properties":{"id":{"type":"string"},"verdict":{"type":"string"},"routes":{"type":"array"},
            "dispositions":{"type":"array"},"summary":{"type":"string"},"ruleset_version":{"type":"string"},"settings_version":{"type":"integer"},
            "outcome":{"type":"string"},"findings":{"type":"array"},"input_sha256":{"type":"string"},"signed_by":{"type":"string"},
            "signed_at":{"type":"string"},"amends":{"type":["string","null"]},"amendment_reason":{"type":["string","null"]}}},
        "Booking": {"type":"object","required":["patient_id","type","start"],"additionalProperties":false,"properties":{
            "patient_id":{"type":"string","format":"uuid"},"type":{"type":"string","description":"appointment type code or id"},
            "start":{"type":"string","format":"date-time","description":"RFC 3339 with any UTC offset; on the 5-minute grid"},
            "staff_ids":{"type":"array","items":{"type":"string","format":"uuid"}},"room_id":{"type":["string","null"]},
            "location_id":{"type":["string","null"]}}},
        "Session": {"type":"object","properties":{"id":{"type":"string"},"state":{"type":"string"},
            "blocked_by":{"type":"array"},"checks":{"type":"array","items":{"type":"object","properties":{
            "kind":{"type":"string"},"due_at":{"type":"string"},"status":{"type":"string"}}}},
            "unacknowledged_alerts":{"type":"array"},"discharge":{},"protocol":{"type":"object"}}},
        "PsychotherapyNote": {"type":"object","properties":{"id":{"type":"string","format":"uuid"},
            "session_id":{"type":"string","format":"uuid"},"patient_id":{"type":"string","format":"uuid"},
            "author_id":{"type":"string","format":"uuid"},"text":{"type":"string","description":"The original text, as signed"},
            "signed_at":{"type":"string","format":"date-time"},
            "amendments":{"type":"array","description":"Oldest first; the last one's text is the note in force","items":{"type":"object","properties":{
                "id":{"type":"string","format":"uuid"},"text":{"type":"string"},"reason":{"type":"string"},
                "signed_at":{"type":"string","format":"date-time"}}}}}},
        "PsychotherapyNotes": {"type":"object","properties":{"session_id":{"type":"string","format":"uuid"},
            "patient_id":{"type":"string","format":"uuid"},"session_opened_at":{"type":"string","format":"date-time"},
            "notes":{"type":"array","items":r("PsychotherapyNote")}}},
        "Appointment": {"type":"object","properties":{"id":{"type":"string"},"patient_id":{"type":"string"},"type":{"type":"string"},
            "start":{"type":"string"},"end":{"type":"string"},"staff_ids":{"type":"array"},"room_id":{"type":["string","null"]},
            "location_id":{"type":"string"},"course_id":{"type":["string","null"]},
            "status":{"enum":["booked","cancelled","no_show","rescheduled","completed"]},"warnings":{"type":"array"}}},
        "AppointmentType": {"type":"object","required":["code","name","kind","length","staff","needs_room","telehealth"],"properties":{
            "code":{"type":"string"},"name":{"type":"string"},"kind":{"enum":["consultation","preparation","dosing","integration","follow_up","course_review"]},
            "route":{"type":["string","null"]},"length":{"type":"object","description":"{rule: fixed, minutes} or {rule: dosing, check_in_minutes, observation_minutes, recovery_minutes}"},
            "staff":{"type":"array","description":"each entry: the roles one person may have, e.g. [[\"prescriber\",\"nurse\"],[\"therapist\"]]"},
            "needs_room":{"type":"boolean"},"telehealth":{"type":"boolean"}}},
        "Pathway": {"type":"object","properties":{"stage":{"enum":["referral","consultation","eligibility","consent","preparation",
            "treatment","integration","maintenance","completed","withdrawn","on_hold","ineligible"]},"stage_label":{"type":"string"},
            "next":{"type":"array","items":{"type":"object","properties":{"what":{"type":"string"},"who":{"type":"string"},"urgent":{"type":"boolean"}}}}}}
    })
}

/// The lists paged by cursor (`?limit=&cursor=`, answered as a [`Page`](super::page)).
/// The lists paged by cursor (`?limit=&cursor=`, answered as a [`Page`](super::page)), with the
/// shared filters each takes (`?patient=`, `?from=&to=`); the handlers take the same.
const PAGED: &[(&str, &str, &[Filter])] = &[
    ("GET", "/api/v1/patients", &[]),
    ("GET", "/api/v1/audit", &[]),
    ("GET", "/api/v1/appointments", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/safety-alerts", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/cs/ledger", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/journal/queue", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/record-requests", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/patients/{id}/notes", &[Filter::Dates]),
    ("GET", "/api/v1/psychotherapy-notes/shared", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/webhooks/deliveries", &[Filter::Dates]),
    ("GET", "/api/v1/users", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/measures/due", &[Filter::Patient, Filter::Dates]),
    ("GET", "/api/v1/tokens", &[]),
    ("GET", "/api/v1/rems-forms", &[]),
    ("GET", "/api/v1/patients/{id}/dispensing", &[Filter::Dates]),
    ("GET", "/api/v1/portal/journal", &[Filter::Dates]),
    ("GET", "/api/v1/patients/{id}/record-requests", &[Filter::Dates]),
    ("GET", "/api/v1/portal/record-requests", &[Filter::Dates]),
];

/// Who may call an operation: the roles, and the API token scopes that open it.
fn describe_access(roles: &[&str], action: kapstone_domain::Action) -> String {
    if roles.is_empty() {
        return "No sign-in needed.".to_owned();
    }
    let scopes: Vec<&str> = Scope::ALL.iter().filter(|s| s.actions().contains(&action)).map(|s| s.as_str()).collect();
    if scopes.is_empty() {
        format!("Roles: {}. Not open to API tokens.", roles.join(", "))
    } else {
        format!("Roles: {}. API token scopes: {}.", roles.join(", "), scopes.join(", "))
    }
}

/// The `Idempotency-Key` header every JSON write accepts (issue 9; `api/idempotency.rs`).
fn idempotency_key_parameter() -> Value {
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "A key of your choosing (1 to 255 visible ASCII characters; a UUID is a good key) that makes a \
            retry safe: a repeat of the same request with the same key within the key's lifetime (24 hours by \
            default) is not applied again but answered with the original status and body, marked \
            `Idempotent-Replayed: true`. The same key with a different method, path or body is refused (422, field \
            `Idempotency-Key`). The answer is stored in the same transaction as the change, so a retry still gets it \
            when a crash lost it on its way. \
            Keys are per account or API token. A request refused before it changed anything does not use up its key.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    })
}

/// The `{name}` segments of a path template, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// A path parameter: every one of the API's names an id (a UUID).
fn path_parameter(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

/// The operations whose success response is described by hand rather than derived from the type
/// the handler serializes: neither is JSON of a Rust type (this document; a CSV download). A test
/// fails when a route is missing here without a derived schema, or is listed here with one.
#[cfg(test)]
const HAND_WRITTEN: &[(&str, &str)] = &[("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/appointments.csv")];

/// Operations that create (201) or, when it exists already, return the same thing (200).
const ALSO_200: &[(&str, &str)] = &[("POST", "/api/v1/appointments/{id}/session")];

/// The whole document.
pub fn build() -> Value {
    let mut g = Derive::new();
    let mut paths = Map::new();
    for route in crate::routes::table().into_iter().filter(|r| r.path.starts_with("/api/v1/")) {
        let method = route.method.as_str();
        let Some(mut d) = describe(method, route.path, &mut g) else { continue };
        if d.derived {
            close(&mut d.response, false);
        }
        let roles: Vec<&str> = roles_allowed(route.action).iter().map(|r| r.as_str()).collect();
        let mut operation = json!({
            "summary": d.summary,
            "description": describe_access(&roles, route.action),
            "responses": {
                d.status: if d.response.is_null() { json!({"description":"Done"}) } else {
                    // A CSV download names its media type in the schema; everything else is JSON.
                    let media = d.response["contentMediaType"].as_str().unwrap_or("application/json").to_owned();
                    json!({"description":"Success","content":{media: {"schema": d.response}}}) },
                "4XX": {"description":"Refused; `error.field` names the input at fault","content":{"application/json":{"schema": r("Error")}}},
                "5XX": {"description":"Failed on our side; `error.message` carries a reference for the log","content":{"application/json":{"schema": r("Error")}}},
            },
        });
        // Creates that answer 200 with the same body when the thing exists already.
        if ALSO_200.contains(&(method, route.path)) {
            let same = operation["responses"][d.status].clone();
            operation["responses"]["200"] = same;
        }
        if route.action == kapstone_domain::Action::Public {
            // No bearer token needed (sign-in itself, this document).
            operation["security"] = json!([]);
        }
        let mut parameters: Vec<Value> = path_parameters(route.path).into_iter().map(path_parameter).collect();
        if let Some((_, _, filters)) = PAGED.iter().find(|(m, p, _)| *m == method && *p == route.path) {
            parameters.push(json!({"$ref":"#/components/parameters/limit"}));
            parameters.push(json!({"$ref":"#/components/parameters/cursor"}));
            if filters.contains(&Filter::Patient) {
                parameters.push(json!({"$ref":"#/components/parameters/patient"}));
            }
            if filters.contains(&Filter::Dates) {
                parameters.push(json!({"$ref":"#/components/parameters/from"}));
                parameters.push(json!({"$ref":"#/components/parameters/to"}));
            }
        }
        if super::idempotency::applies(&route.method, route.path) {
            parameters.push(idempotency_key_parameter());
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(req) = d.request {
            operation["requestBody"] = json!({"required":true,"content":{"application/json":{"schema":req}}});
        }
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        entry[method.to_ascii_lowercase()] = operation;
    }
    let schemas = referenced_only(schemas(g.components()), &paths);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Kapstone API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Authenticate with POST /api/v1/auth/login and send `Authorization: Bearer <token>`, or send an API token (kst_...) an admin created with scopes. Errors are `{\"error\":{\"code\",\"message\",\"field\"}}`."},
        "components": {
            "schemas": schemas,
            "parameters": {
                "limit": {"name":"limit","in":"query","required":false,
                    "description": format!("How many items a page holds: 1 to {MAX_LIMIT}, default {DEFAULT_LIMIT}; anything else is 422 naming `limit`"),
                    "schema":{"type":"integer","minimum":1,"maximum":MAX_LIMIT,"default":DEFAULT_LIMIT}},
                "cursor": {"name":"cursor","in":"query","required":false,
                    "description":"Opaque: the `next_cursor` of the page before; absent for the first page. A cursor this list did not make is 422 naming `cursor`",
                    "schema":{"type":"string"}},
                "patient": {"name":"patient","in":"query","required":false,
                    "description":"Only the rows of this patient (a patient id); anything else is 422 naming `patient`",
                    "schema":{"type":"string","format":"uuid"}},
                "from": {"name":"from","in":"query","required":false,
                    "description":"Only rows from this time on (included; the time each list names): an RFC 3339 instant, or a date YYYY-MM-DD, meaning the start of that day in the clinic's time zone (the location's, for the ledger). Anything else is 422 naming `from`",
                    "schema":{"type":"string"}},
                "to": {"name":"to","in":"query","required":false,
                    "description":"Only rows before this time (excluded): an RFC 3339 instant, or a date YYYY-MM-DD, which includes that whole day. Anything else, or a `to` not after `from`, is 422 naming `to`",
                    "schema":{"type":"string"}},
            },
            "securitySchemes": {"bearer": {"type":"http","scheme":"bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented() {
        for route in crate::routes::table().into_iter().filter(|r| r.path.starts_with("/api/v1/")) {
            let documented = describe(route.method.as_str(), route.path, &mut Derive::new()).is_some();
            assert!(documented, "{} {}", route.method, route.path);
        }
        let doc = build();
        assert_eq!(doc["openapi"], "3.1.0");
        // A request body is the schema of the type the handler reads, inline.
        let put = &doc["paths"]["/api/v1/patients/{id}/consultation"]["put"];
        let body = &put["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"]["conditions"]["properties"]["hepatic"].is_object(), "{body}");
        // Every JSON write takes an Idempotency-Key; reads and sign-in do not.
        let key_param = |m: &str, p: &str| {
            doc["paths"][p][m]["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|x| x["name"] == "Idempotency-Key" && x["in"] == "header"))
        };
        assert!(key_param("post", "/api/v1/patients"));
        assert!(key_param("put", "/api/v1/patients/{id}/consultation"));
        assert!(!key_param("get", "/api/v1/patients"));
        assert!(!key_param("post", "/api/v1/auth/login"));
        // Every referenced schema exists.
        let text = doc.to_string();
        for name in text.split("#/components/schemas/").skip(1).map(|s| s.split('"').next().unwrap_or_default()) {
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }

    /// Every `/api/v1` success body is derived from a type, but for the shrinking [`HAND_WRITTEN`]
    /// list.
    #[test]
    fn response_schemas_are_derived_from_the_handlers_types() {
        let mut g = Derive::new();
        let mut wrong = Vec::new();
        for route in crate::routes::table().into_iter().filter(|r| r.path.starts_with("/api/v1/")) {
            let (method, path) = (route.method.as_str(), route.path);
            let Some(d) = describe(method, path, &mut g) else { continue };
            let listed = HAND_WRITTEN.contains(&(method, path));
            let key = format!("{method} {path}");
            if d.derived && listed {
                wrong.push(format!("{key}: derived now; take it off HAND_WRITTEN"));
            }
            if !d.derived && !listed && !d.response.is_null() {
                wrong.push(format!("{key}: neither derived nor on HAND_WRITTEN"));
            }
        }
        for (method, path) in HAND_WRITTEN {
            let routed = crate::routes::table().into_iter().any(|r| r.method.as_str() == *method && r.path == *path);
            if !routed {
                wrong.push(format!("{method} {path}: on HAND_WRITTEN but not a route"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// A request body that flattens a tagged enum is one closed object per variant, each with the
    /// struct's own fields: no `unevaluatedProperties` that request generators cannot use.
    #[test]
    fn a_flattened_step_is_documented_variant_by_variant_with_its_time() {
        let mut g = Derive::new();
        let v = g.request::<super::super::sessions::EventBody>().unwrap_or_default();
        assert!(!v.to_string().contains("unevaluatedProperties"), "{v}");
        let branches = v["oneOf"].as_array().cloned().unwrap_or_default();
        assert!(branches.len() > 10, "one per kind of step: {v}");
        for b in &branches {
            let leaves: Vec<&Value> = match b["oneOf"].as_array() {
                Some(inner) => inner.iter().collect(),
                None => vec![b],
            };
            for leaf in leaves {
                assert!(leaf["properties"]["at"].is_object(), "`at` on every variant: {leaf}");
                assert!(leaf["properties"]["kind"].is_object(), "the tag on every variant: {leaf}");
                assert_eq!(leaf["additionalProperties"], json!(false), "closed: {leaf}");
            }
        }
        let names: Vec<&str> = branches
            .iter()
            .flat_map(|b| b["oneOf"].as_array().map_or_else(|| vec![b], |i| i.iter().collect()))
            .filter_map(|l| l["properties"]["kind"]["const"].as_str())
            .collect();
        for kind in ["checked_in", "reading", "discharged", "adverse_event_recorded"] {
            assert!(names.contains(&kind), "{kind} in {names:?}");
        }
    }

    #[test]
    fn every_path_parameter_is_declared_on_every_operation() {
        let doc = build();
        let mut undeclared = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            // Any `{...}` in the template, whatever it looks like.
            let named: Vec<&str> = path.split('{').skip(1).filter_map(|rest| rest.split('}').next()).collect();
            for (method, operation) in item.as_object().into_iter().flatten() {
                let declared: Vec<&Value> =
                    operation["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path").collect();
                for name in &named {
                    let ok = declared.iter().any(|p| p["name"] == *name && p["required"] == true);
                    if !ok {
                        undeclared.push(format!("{method} {path}: {{{name}}}"));
                    }
                }
                // And nothing declared that the path does not have.
                for p in &declared {
                    if !named.iter().any(|n| p["name"] == *n) {
                        undeclared.push(format!("{method} {path}: declares {}", p["name"]));
                    }
                }
            }
        }
        assert!(undeclared.is_empty(), "{undeclared:#?}");
        // The one an earlier schemathesis run found missing.
        let exception = &doc["paths"]["/api/v1/staff/{id}/exceptions/{exception_id}"];
        assert!(exception.as_object().is_some_and(|o| !o.is_empty()), "the route is documented");
    }

    /// An object schema with neither `properties` nor `additionalProperties` accepts anything.
    fn loose_objects(schema: &Value, at: String, out: &mut Vec<String>) {
        match schema {
            Value::Object(o) => {
                let is_object = o
                    .get("type")
                    .is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object"))));
                if is_object && !o.contains_key("properties") && !o.contains_key("additionalProperties") {
                    out.push(at.clone());
                }
                for (k, v) in o {
                    loose_objects(v, format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| loose_objects(v, format!("{at}/{i}"), out)),
            _ => {}
        }
    }

    #[test]
    fn no_response_is_a_bare_object() {
        let doc = build();
        let mut loose = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    let schema = &response["content"]["application/json"]["schema"];
                    loose_objects(schema, format!("{method} {path} {status}"), &mut loose);
                }
            }
        }
        let used = ["Error", "Patient", "Appointment", "Session", "Decision", "JournalEntry", "IntegrationNote"];
        for name in used {
            assert!(doc["components"]["schemas"][name].is_object(), "{name} is not in the document");
        }
        for name in used {
            loose_objects(&doc["components"]["schemas"][name], name.to_owned(), &mut loose);
        }
        // The document itself is described by OpenAPI's own schema; its parts are maps.
        loose.retain(|l| !l.starts_with("get /api/v1/openapi.json"));
        assert!(loose.is_empty(), "{loose:#?}");
    }
}
