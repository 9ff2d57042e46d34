//! The dosing session page: who is in the chair, what is due next and what blocks it, the timed
//! checks, alerts waiting for an acknowledgement, the readings, the dose and the discharge
//! criteria, and a small form for each step that makes sense now for the user's role. Every form
//! posts to `/sessions/{id}/record` with a `step` field and works without JavaScript; the domain
//! decides, and a refused step comes back (422) with the rule's code next to its form.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kapstone_domain::adverse_event::{AdverseEvent, AeCode, AeOutcome, BuiltinAe};
use kapstone_domain::decision::Route;
use kapstone_domain::discharge::CriterionStatus;
use kapstone_domain::identity::Role;
use kapstone_domain::monitoring::{
    Cadss, Cadss6, Cadss23, CheckStatus, ClinicianObservation, Measurement, Moaas, Reading, observation_alert,
};
use kapstone_domain::protocol::DoseRule;
use kapstone_domain::session::{SessionEvent, SessionState, Stamp};
use kapstone_domain::{FieldError, PatientId, UtcTs};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence};
use crate::app::scheduling::{from_jiff, initials, to_jiff, zones};
use crate::app::sessions::{self as app, Input, Loaded};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------------
// What the page shows
// ---------------------------------------------------------------------------------------------

pub struct Line {
    pub label: String,
    pub value: String,
}

pub struct BlockerLine {
    pub code: &'static str,
    pub message: String,
    pub who: String,
}

pub struct CheckLine {
    pub kind: &'static str,
    pub due: String,
    /// `upcoming`, `due`, `overdue`, `missed`, `done` (a CSS class too).
    pub status: &'static str,
    pub label: &'static str,
}

pub struct AlertLine {
    pub id: u32,
    pub rule: &'static str,
    pub message: String,
    pub raised: String,
}

pub struct ReadingLine {
    pub at: String,
    pub what: &'static str,
    pub value: String,
}

pub struct CriterionLine {
    pub id: &'static str,
    pub title: &'static str,
    pub status: &'static str,
    pub label: &'static str,
    pub reason: String,
}

/// One input of a step's form.
pub struct FieldView {
    pub name: &'static str,
    pub id: String,
    pub label: String,
    /// `text`, `number`, `time`, `date`, `tel`, `checkbox`, `checkboxes`, `select`, `radio`, `textarea`.
    pub kind: &'static str,
    pub inputmode: &'static str,
    pub value: String,
    /// (value, label) of a select, radio group or checkbox group; `chosen` lists the values picked.
    pub options: Vec<(String, String)>,
    pub chosen: Vec<String>,
    pub required: bool,
    pub invalid: bool,
    pub hint: &'static str,
}

impl FieldView {
    pub fn picked(&self, v: &str) -> bool {
        self.chosen.iter().any(|c| c == v)
    }

    /// The ids that describe the input: its form's error when the input is at fault, its hint.
    pub fn described_by(&self, step: &str) -> String {
        let mut ids = Vec::new();
        if self.invalid {
            ids.push(format!("{step}-error"));
        }
        if !self.hint.is_empty() {
            ids.push(format!("{}-hint", self.id));
        }
        ids.join(" ")
    }
}

/// A refused step, shown next to its form.
pub struct StepError {
    pub code: String,
    pub message: String,
    /// The field at fault on the form, as (label, element id): the message names it and links to
    /// it, so a keyboard user goes straight there.
    pub field: Option<(String, String)>,
}

/// One step's form.
pub struct FormView {
    pub step: &'static str,
    pub title: &'static str,
    pub hint: String,
    pub button: &'static str,
    pub primary: bool,
    pub fields: Vec<FieldView>,
    pub error: Option<StepError>,
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    layout: Layout,
    id: Uuid,
    patient: String,
    initials: String,
    patient_id: Uuid,
    protocol_title: String,
    protocol_ref: String,
    state: &'static str,
    state_label: &'static str,
    minutes_since_dose: Option<i64>,
    zone: String,
    blockers: Vec<BlockerLine>,
    checks: Vec<CheckLine>,
    alerts: Vec<AlertLine>,
    can_acknowledge: bool,
    readings: Vec<ReadingLine>,
    record: Vec<Line>,
    criteria: Vec<CriterionLine>,
    discharge_ready: bool,
    earliest_discharge: Option<String>,
    notes: Vec<Line>,
    forms: Vec<FormView>,
    /// A refusal whose form is not on the page (shown at the top instead).
    error: Option<(String, StepError)>,
    notice: Option<String>,
    /// After the session: the next booked integration session ("Mon 2026-12-07 10:00"), if any.
    next_integration: Option<String>,
    /// Advice that does not stop the session (TV-SPR-5, DDI-011): (code, message).
    advisories: Vec<(&'static str, String)>,
    spravato: bool,
    /// What the session drew from the controlled-substance stock, and any waste still to record
    /// (shown to the roles that keep the ledger): (text, link to record the waste).
    stock: Vec<(String, Option<String>)>,
}

/// The form values sent with a refused step, to show them again.
struct Sent<'a> {
    step: &'a str,
    pairs: &'a [(String, String)],
    field: Option<String>,
}

impl Sent<'_> {
    fn value(&self, step: &str, name: &str) -> Option<String> {
        (self.step == step).then(|| get(self.pairs, name))
    }
    fn values(&self, step: &str, name: &str) -> Option<Vec<String>> {
        (self.step == step).then(|| self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect())
    }
}

fn hm(t: UtcTs, tz: &TimeZone) -> String {
    let z = to_jiff(t).to_zoned(tz.clone());
    format!("{:02}:{:02}", z.hour(), z.minute())
}

/// "10:20" today, "2026-03-04 10:20" on another day (an adverse event followed up later).
fn when(t: UtcTs, tz: &TimeZone) -> String {
    let z = to_jiff(t).to_zoned(tz.clone());
    if z.date() == Timestamp::now().to_zoned(tz.clone()).date() {
        format!("{:02}:{:02}", z.hour(), z.minute())
    } else {
        format!("{} {:02}:{:02}", z.date(), z.hour(), z.minute())
    }
}

fn roles(rs: &[Role]) -> String {
    if rs.is_empty() {
        return "no one: it lifts with time".into();
    }
    rs.iter().map(|r| r.label()).collect::<Vec<_>>().join(" or ")
}

fn stamp(s: &Stamp, tz: &TimeZone) -> String {
    format!("{} by {}", hm(s.at, tz), s.by.role.label())
}

fn mg(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r.fract() == 0.0 { format!("{r:.0}") } else { format!("{r}") }
}

fn check_status(s: CheckStatus) -> (&'static str, &'static str) {
    match s {
        CheckStatus::Upcoming => ("upcoming", "Upcoming"),
        CheckStatus::Due => ("due", "Due now"),
        CheckStatus::Overdue => ("overdue", "OVERDUE"),
        CheckStatus::Missed => ("missed", "Missed"),
        CheckStatus::Done => ("done", "Done"),
    }
}

/// One reading of the table; `entered_at` is when it was recorded (later for a back-dated one).
fn reading_line(r: &Reading, entered_at: UtcTs, tz: &TimeZone) -> ReadingLine {
    let (what, value) = match &r.measurement {
        Measurement::BloodPressure { bp, heart_rate, spo2 } => {
            let mut v = bp.to_string();
            if let Some(h) = heart_rate {
                v.push_str(&format!(", HR {h}"));
            }
            if let Some(s) = spo2 {
                v.push_str(&format!(", SpO2 {s}"));
            }
            ("Blood pressure", v)
        }
        Measurement::Spo2Rr { spo2, resp_rate } => {
            let mut parts = Vec::new();
            if let Some(s) = spo2 {
                parts.push(format!("SpO2 {s}"));
            }
            if let Some(r) = resp_rate {
                parts.push(format!("RR {r}"));
            }
            ("SpO2 / respiratory rate", parts.join(", "))
        }
        Measurement::Moaas { score } => ("Sedation", format!("{score}: {}", score.description())),
        Measurement::Cadss { score } => ("Dissociation", score.to_string()),
    };
    let taken = hm(r.taken_at, tz);
    let entered = hm(entered_at, tz);
    let at = if entered == taken { taken } else { format!("{taken} (entered {entered})") };
    ReadingLine { at, what, value }
}

// ---------------------------------------------------------------------------------------------
// The forms
// ---------------------------------------------------------------------------------------------

struct Fb<'a> {
    step: &'static str,
    sent: &'a Sent<'a>,
    fields: Vec<FieldView>,
}

impl<'a> Fb<'a> {
    fn new(step: &'static str, sent: &'a Sent<'a>) -> Self {
        Self { step, sent, fields: Vec::new() }
    }

    fn add(mut self, name: &'static str, label: &str, kind: &'static str, default: &str) -> Self {
        let value = self.sent.value(self.step, name).unwrap_or_else(|| default.to_owned());
        let invalid = self.sent.step == self.step && self.sent.field.as_deref() == Some(name);
        let inputmode = match kind {
            "number" => "numeric",
            "decimal" => "decimal",
            _ => "",
        };
        let kind = if kind == "decimal" { "text" } else { kind };
        self.fields.push(FieldView {
            name,
            id: format!("{}-{}", self.step, name.replace('_', "-")),
            label: label.to_owned(),
            kind,
            inputmode,
            value,
            options: Vec::new(),
            chosen: Vec::new(),
            required: false,
            invalid,
            hint: "",
        });
        self
    }

    fn required(mut self) -> Self {
        if let Some(f) = self.fields.last_mut() {
            f.required = true;
        }
        self
    }

    fn hint(mut self, hint: &'static str) -> Self {
        if let Some(f) = self.fields.last_mut() {
            f.hint = hint;
        }
        self
    }

    fn choice(
        self,
        name: &'static str,
        label: &str,
        kind: &'static str,
        options: Vec<(String, String)>,
        default: &str,
    ) -> Self {
        let chosen = self.sent.values(self.step, name).unwrap_or_else(|| vec![default.to_owned()]);
        let mut s = self.add(name, label, kind, default);
        if let Some(f) = s.fields.last_mut() {
            f.options = options;
            f.chosen = chosen;
        }
        s
    }

    fn form(self, title: &'static str, button: &'static str, primary: bool, hint: impl Into<String>) -> FormView {
        FormView { step: self.step, title, hint: hint.into(), button, primary, fields: self.fields, error: None }
    }
}

const TAKEN_AT_HINT: &str = "HH:MM today, clinic time; leave empty for now";
const RESOLVED_AT_HINT: &str = "Date and time, clinic time (a time alone means today)";

fn ae_outcomes() -> Vec<(String, String)> {
    opts(&[
        ("resolving", "Resolving"),
        ("resolved", "Resolved"),
        ("resolved_with_sequelae", "Resolved with sequelae"),
        ("not_resolved", "Not resolved"),
        ("fatal", "Fatal"),
        ("unknown", "Unknown"),
    ])
}

/// The JSON name of an observation (its serde form), for a form's value.
fn observation_code(o: ClinicianObservation) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn ae_outcome_label(o: AeOutcome) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

/// "Nausea, moderate, onset 10:20, resolved at 10:45": one adverse event in a line.
fn ae_summary(ae: &AdverseEvent, tz: &TimeZone) -> String {
    let name = match ae.code() {
        AeCode::Builtin(b) => b.display_name().to_owned(),
        other => other.as_str().to_owned(),
    };
    let severity = serde_json::to_value(ae.severity()).ok().and_then(|v| v.as_str().map(str::to_owned));
    let mut v = format!("{name}, {}, onset {}", severity.unwrap_or_default(), when(ae.onset_at(), tz));
    if ae.is_serious() {
        v.push_str(", SERIOUS");
    }
    v.push_str(&format!(", {}", ae_outcome_label(ae.outcome())));
    if let Some(r) = ae.resolved_at() {
        v.push_str(&format!(" at {}", when(r, tz)));
    }
    v
}

fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(v, l)| ((*v).to_owned(), (*l).to_owned())).collect()
}

fn yes_no() -> Vec<(String, String)> {
    opts(&[("no", "No"), ("yes", "Yes")])
}

/// The forms that make sense now for this user (the domain still decides each step).
fn forms(
    l: &Loaded,
    user: &CurrentUser,
    tz: &TimeZone,
    sent: &Sent,
    screens: &[app::ScreenCandidate],
) -> Vec<FormView> {
    let ctx = l.ctx();
    let s = l.session();
    let st = s.state_now(&ctx);
    let role = user.role;
    let prescriber = role == Role::Prescriber;
    let clinical = matches!(role, Role::Nurse | Role::Prescriber);
    let any = clinical || role == Role::Therapist;
    let done = st.is_final();
    let blocked: Vec<&str> = s.blocked_by(&ctx).iter().map(|b| b.code).collect();
    let mut out = Vec::new();
    let now_hm = hm(UtcTs::now(), tz);

    let spravato = l.protocol.route == kapstone_domain::decision::Route::SpravatoIntranasal;
    if any && st == SessionState::Scheduled {
        let mut fb = Fb::new("check_in", sent)
            .add("escort_name", "Escort's name", "text", "")
            .required()
            .add("escort_phone", "Escort's phone", "tel", "")
            .required()
            .add("escort_relationship", "Relationship", "text", "")
            .choice(
                "escort_confirmed_in_person",
                "Escort seen in person at drop-off",
                "select",
                opts(&[("yes", "Yes, seen in person"), ("no", "No, confirm later")]),
                "yes",
            )
            .add("mood", "Mood (0–10, or in words)", "text", "")
            .required()
            .add("sleep_hours", "Hours of sleep last night", "decimal", "")
            .add("last_food_at", "Last food (time)", "time", "")
            .add("last_fluid_at", "Last fluid (time)", "time", "");
        if spravato {
            // DDI-011: a nasal steroid or decongestant at least 1 h before Spravato.
            fb = fb.add("last_nasal_spray_at", "Nasal steroid or decongestant used at (time)", "time", "");
        }
        out.push(
            fb.choice("alcohol", "Alcohol or other substances in the last 12 h", "radio", yes_no(), "no")
                .choice("intoxication", "Signs of intoxication", "radio", yes_no(), "no")
                .add("medication_changes", "Medication changes since the last session", "text", "")
                .choice(
                    "pregnancy",
                    "Pregnancy",
                    "select",
                    opts(&[
                        ("not_applicable", "Not applicable"),
                        ("negative_test", "Negative test today"),
                        ("positive", "Positive"),
                        ("declined", "Test declined"),
                    ]),
                    "not_applicable",
                )
                .add("weight_kg", "Weight today (kg)", "decimal", "")
                .hint("Needed for a weight-based dose")
                .form("Check in", "Check in", true, "Arrival: escort, state of mind, pregnancy and weight."),
        );
    }
    if !done
        && let Some(c) = s.check_in()
        && !c.details.escort_confirmed_in_person
        && s.escort_confirmation().is_none()
    {
        out.push(
            Fb::new("escort", sent)
                .choice(
                    "how",
                    "How the escort was confirmed",
                    "radio",
                    opts(&[("by_phone", "By phone"), ("in_person", "In person")]),
                    "by_phone",
                )
                .form(
                    "Confirm the escort",
                    "Confirm the escort",
                    true,
                    format!("{} · {}", c.details.escort.name, c.details.escort.phone),
                ),
        );
    }
    if prescriber && blocked.contains(&"MON-01") {
        out.push(Fb::new("bp_confirm", sent).add("reason", "Reason", "text", "").required().form(
            "Confirm dosing with a raised pre-dose BP (MON-01)",
            "Confirm",
            true,
            "",
        ));
    }
    // The pre-session screeners answered since the last visit and not linked yet (a check-in
    // links the newest of each; one answered later in the waiting room is linked here).
    let unlinked: Vec<&app::ScreenCandidate> = screens
        .iter()
        .filter(|c| !s.screenings().iter().any(|l| l.screening.response_id == c.screening.response_id))
        .collect();
    if any && !done && s.administration().is_none() && st != SessionState::Scheduled && !unlinked.is_empty() {
        let options: Vec<(String, String)> = unlinked
            .iter()
            .map(|c| (c.screening.response_id.clone(), screen_label(&c.screening, c.submitted_at, c.via_portal, tz)))
            .collect();
        let first = options.first().map(|o| o.0.clone()).unwrap_or_default();
        out.push(Fb::new("link_screening", sent).choice("response_id", "Screener", "select", options, &first).form(
            "Link a pre-session screener",
            "Link it to this session",
            false,
            "Answered since the last visit; the score is taken from the record.",
        ));
    }
    if prescriber && st == SessionState::Held {
        out.push(Fb::new("release", sent).add("reason", "Reason for going on", "text", "").required().form(
            "Release the hold",
            "Release the hold",
            true,
            "The prescriber's decision, with the reason.",
        ));
    }
    if prescriber && matches!(st, SessionState::CheckedIn | SessionState::ClearedForDosing) {
        let mut b = Fb::new("order", sent);
        let hint = match &l.protocol.dose {
            DoseRule::MgPerKg(r) => {
                let stocks = l
                    .protocol
                    .stock
                    .liquid_mg_per_ml()
                    .iter()
                    .map(|m| (mg(*m), format!("{} mg/mL", mg(*m))))
                    .collect::<Vec<_>>();
                let first = stocks.first().map(|s| s.0.clone()).unwrap_or_default();
                b = b.add("dose_mg_per_kg", "Dose (mg/kg)", "decimal", &mg(r.default_mg_per_kg)).choice(
                    "stock_mg_per_ml",
                    "Stock",
                    "select",
                    stocks,
                    &first,
                );
                // Dilution, infusion time and bag are the infusion's: an IM order does not ask.
                if l.protocol.route == Route::IntravenousRacemic {
                    b = b
                        .choice("diluted", "100 mg/mL diluted with an equal volume", "radio", yes_no(), "no")
                        .add(
                            "infusion_minutes",
                            "Infusion time (min)",
                            "decimal",
                            &r.default_infusion_minutes.map(mg).unwrap_or_default(),
                        )
                        .add("bag_ml", "Bag volume (mL)", "decimal", "");
                }
                format!(
                    "Weight-based: the weight on the record is used. Above {} mg/kg needs a reason.",
                    mg(r.override_above_mg_per_kg)
                )
            }
            DoseRule::Devices(r) => {
                let doses: Vec<(String, String)> =
                    r.allowed_doses_mg.iter().map(|d| (d.to_string(), format!("{d} mg"))).collect();
                let first = doses.first().map(|d| d.0.clone()).unwrap_or_default();
                b = b.choice("dose_mg", "Dose", "radio", doses, &first);
                "Spravato: the first session and the indication limit the dose (TV-SPR-2).".to_owned()
            }
            DoseRule::FixedMgRange(r) => {
                let tablets = l.protocol.stock.tablet_strengths_mg();
                b = b.add("dose_mg", "Dose (mg)", "decimal", "").required();
                if !tablets.is_empty() {
                    let t: Vec<(String, String)> = tablets.iter().map(|m| (mg(*m), format!("{} mg", mg(*m)))).collect();
                    let first = t.first().map(|x| x.0.clone()).unwrap_or_default();
                    b = b.choice("tablet_mg", "Tablet strength", "select", t, &first);
                }
                format!("{}–{} mg.", mg(r.min_mg), mg(r.max_mg))
            }
            DoseRule::Applications(_) => {
                b = b.add("dose_mg", "Dose (mg)", "decimal", "").required();
                String::new()
            }
        };
        out.push(b.add("override_reason", "Override reason (only above the protocol's limit)", "text", "").form(
            "Order the dose",
            "Order the dose",
            true,
            hint,
        ));
    }
    let before_dose = matches!(st, SessionState::CheckedIn | SessionState::ClearedForDosing);
    // Offered when the domain asks for it (IV, IM), and not to the prescriber who ordered.
    let orderer = s.ordered().map(|o| o.stamp.by.user);
    if clinical && before_dose && blocked.contains(&"dose_verification") && orderer.is_some_and(|by| by != user.id) {
        out.push(Fb::new("verify", sent).form(
            "Second check of the dose",
            "The dose is checked",
            true,
            "A second clinician checks the ordered dose against the order and the record.",
        ));
    }
    if clinical && st == SessionState::CheckedIn {
        out.push(Fb::new("clear", sent).form(
            "Clear for dosing",
            "Clear for dosing",
            true,
            "The pre-dose gate: consent, decision, REMS, C-SSRS, escort, vitals and the order.",
        ));
    }
    if clinical && st == SessionState::ClearedForDosing {
        let stock = &l.protocol.stock;
        let (product, ndc) = if let Some(k) = stock.device_kits.first() {
            (k.product.clone(), k.ndc.clone())
        } else if let Some(v) = stock.vials.first() {
            (v.product.clone(), v.ndc.clone().unwrap_or_default())
        } else if let Some(t) = stock.tablets.first() {
            (t.product.clone(), String::new())
        } else {
            (stock.nasal_solutions.first().map(|n| n.product.clone()).unwrap_or_default(), String::new())
        };
        let dose = s.ordered().map(|o| mg(o.calculation.dose_mg)).unwrap_or_default();
        out.push(
            Fb::new("administer", sent)
                .add("product", "Product", "text", &product)
                .required()
                .add("ndc", "NDC", "text", &ndc)
                .add("lot", "Lot", "text", "")
                .required()
                .add("expiry", "Expiry", "date", "")
                .required()
                .add("dose_mg", "Dose given (mg)", "decimal", &dose)
                .required()
                .add(
                    "route_snomed",
                    &format!("Route (SNOMED CT; {})", l.protocol.route_code.display),
                    "text",
                    &l.protocol.route_code.code,
                )
                .required()
                .form("Start the administration", "Start the administration", true, ""),
        );
    }
    let device_route = matches!(l.protocol.dose, DoseRule::Devices(_) | DoseRule::Applications(_));
    if clinical && st == SessionState::Dosing && device_route {
        out.push(Fb::new("device", sent).form(
            "Give a device",
            "Device given now",
            true,
            format!("{} given so far.", s.devices().len()),
        ));
    }
    let iv = l.protocol.route == kapstone_domain::decision::Route::IntravenousRacemic;
    if clinical && st == SessionState::Dosing && iv && !s.infusion_paused() {
        out.push(Fb::new("pause_infusion", sent).add("reason", "Reason", "text", "").form(
            "Pause the infusion (MON-05)",
            "Pause the infusion",
            blocked.contains(&"MON-05"),
            "Only the prescriber resumes it, with a reason.",
        ));
    }
    if prescriber && s.infusion_paused() {
        out.push(Fb::new("resume_infusion", sent).add("reason", "Reason for going on", "text", "").required().form(
            "Resume the infusion",
            "Resume the infusion",
            true,
            "The prescriber's evaluation (MON-05), with the reason.",
        ));
    }
    if clinical && st == SessionState::Dosing {
        out.push(
            Fb::new("end_administration", sent)
                .add("reason", "Reason (only when a device dose ends early)", "text", "")
                .form("End the administration", "End the administration", !device_route, ""),
        );
    }
    if !done && st != SessionState::Scheduled {
        if clinical {
            out.push(
                Fb::new("vitals", sent)
                    .add("systolic", "Systolic (mmHg)", "number", "")
                    .add("diastolic", "Diastolic (mmHg)", "number", "")
                    .add("heart_rate", "Heart rate (/min)", "number", "")
                    .add("spo2", "SpO2 (%)", "number", "")
                    .add("resp_rate", "Respiratory rate (/min)", "number", "")
                    .add("taken_at", "Taken at (if not now)", "time", "")
                    .hint(TAKEN_AT_HINT)
                    .form(
                        "Record vitals",
                        "Save vitals",
                        false,
                        format!("Taken now ({now_hm}) unless you give the time."),
                    ),
            );
        }
        if any {
            let moaas: Vec<(String, String)> = (0..=Moaas::MAX)
                .rev()
                .filter_map(|v| Moaas::new(v).ok())
                .map(|m| (m.value().to_string(), format!("{} — {}", m.value(), m.description())))
                .collect();
            out.push(
                Fb::new("scores", sent)
                    .choice("moaas", "MOAA/S (sedation)", "radio", moaas, "")
                    .add("cadss23", "CADSS total, 23 items (0–92)", "number", "")
                    .add("cadss6", "or CADSS-6 total (0–24)", "number", "")
                    .add("taken_at", "Taken at (if not now)", "time", "")
                    .hint(TAKEN_AT_HINT)
                    .form(
                        "Sedation and dissociation",
                        "Save scores",
                        false,
                        format!("Scored now ({now_hm}) unless you give the time."),
                    ),
            );
            // MON-04 and MON-11 are signs a person sees or the patient reports, not readings: a
            // flag raises the rule's alert at once.
            let signs: Vec<(String, String)> = ClinicianObservation::ALL
                .iter()
                .map(|o| (observation_code(*o), format!("{} ({})", o.label(), observation_alert(*o).rule)))
                .collect();
            out.push(
                Fb::new("observation", sent)
                    .choice("observation", "What you see or the patient reports", "radio", signs, "")
                    .add("note", "Note", "text", "")
                    .form(
                        "Flag a warning sign (MON-04, MON-11)",
                        "Flag it and raise the alert",
                        false,
                        "Chest pain, breathlessness or signs of hypertensive encephalopathy raise MON-04 (emergency \
                         care now); a severe emergence reaction raises MON-11.",
                    ),
            );
        }
    }
    if any && st == SessionState::Monitoring {
        out.push(Fb::new("end_experience", sent).form(
            "The experience is over",
            "Start recovery",
            true,
            "Recovery and grounding begin; the discharge criteria then apply.",
        ));
    }
    if clinical && matches!(st, SessionState::Recovery | SessionState::ReadyForDischarge) {
        let mut b = Fb::new("assessment", sent);
        for (name, label) in [
            ("ready_to_leave", "Clinically stable and ready to leave (DC-02)"),
            ("oriented", "Oriented (DC-07)"),
            ("can_talk", "Can talk (DC-07)"),
            ("walks", "Sits up and walks steadily unaided (DC-07)"),
            ("nausea_controlled", "Nausea controlled (DC-07)"),
            ("hydrated", "Adequately hydrated (DC-07)"),
            ("on_room_air", "On room air (DC-06)"),
            ("escort_present", "Escort physically here (DC-08)"),
        ] {
            b = b.choice(name, label, "radio", yes_no(), "yes");
        }
        b = b.choice(
            "cssrs_at_discharge",
            "C-SSRS screener at discharge (DC-09)",
            "select",
            opts(&[("", "Not done"), ("none", "No risk"), ("low", "Low"), ("moderate", "Moderate"), ("high", "High")]),
            "",
        );
        out.push(b.form("Discharge assessment", "Save the assessment", true, ""));
        out.push(
            Fb::new("discharge", sent)
                .choice("instructions_given", "Hand-out given", "radio", opts(&[("yes", "Yes"), ("no", "No")]), "yes")
                .form("Discharge", "Discharge the patient", st == SessionState::ReadyForDischarge, ""),
        );
    }
    if any && matches!(st, SessionState::CheckedIn | SessionState::ClearedForDosing) {
        out.push(
            Fb::new("hold", sent)
                .choice(
                    "rule",
                    "Why",
                    "select",
                    opts(&[
                        ("clinical", "Clinical judgement"),
                        ("GATE-05", "Pre-dose blood pressure (GATE-05)"),
                        ("GATE-06", "Alcohol, substances or intoxication (GATE-06)"),
                    ]),
                    "clinical",
                )
                .add("reason", "Reason", "text", "")
                .required()
                .form("Hold dosing", "Place a hold", false, "Only a prescriber releases a hold."),
        );
    }
    if any && st != SessionState::Scheduled {
        let codes: Vec<(String, String)> =
            BuiltinAe::all().map(|b| (b.code().to_owned(), b.display_name().to_owned())).collect();
        out.push(
            Fb::new("adverse_event", sent)
                .choice("code", "Event", "select", codes, "")
                .add("onset", "Onset (time)", "time", &now_hm)
                .required()
                .choice(
                    "severity",
                    "Severity",
                    "radio",
                    opts(&[("mild", "Mild"), ("moderate", "Moderate"), ("severe", "Severe")]),
                    "mild",
                )
                .choice(
                    "seriousness",
                    "Serious because (leave empty if not serious)",
                    "checkboxes",
                    opts(&[
                        ("death", "Death"),
                        ("life_threatening", "Life-threatening"),
                        ("hospitalization", "Hospitalization"),
                        ("disability", "Disability"),
                        ("other_medically_important", "Other medically important"),
                    ]),
                    "",
                )
                .choice(
                    "actions",
                    "Action taken",
                    "checkboxes",
                    opts(&[
                        ("none_required", "None required"),
                        ("increased_monitoring", "Increased monitoring"),
                        ("infusion_paused", "Infusion paused"),
                        ("dosing_stopped", "Dosing stopped"),
                        ("airway_support_or_oxygen", "Airway support or oxygen"),
                        ("medication_given", "Medication given"),
                        ("emergency_services_called", "Emergency services called"),
                        ("transferred_to_hospital", "Transferred to hospital"),
                        ("other", "Other"),
                    ]),
                    "",
                )
                .add("action_details", "Details of the action", "text", "")
                .choice("outcome", "Outcome", "select", ae_outcomes(), "resolving")
                .add("resolved_at", "Resolved at (only for a resolved outcome)", "datetime-local", "")
                .hint(RESOLVED_AT_HINT)
                .form("Record an adverse event", "Record the adverse event", false, ""),
        );
    }
    // The follow-up of an adverse event stays open after the session ends (documentation).
    if clinical && !s.adverse_events().is_empty() {
        let events: Vec<(String, String)> = s
            .adverse_events()
            .iter()
            .enumerate()
            .map(|(i, ae)| ((i + 1).to_string(), format!("{} — {}", i + 1, ae_summary(ae, tz))))
            .collect();
        let last = events.last().map(|e| e.0.clone()).unwrap_or_default();
        out.push(
            Fb::new("ae_update", sent)
                .choice("number", "Adverse event", "select", events, &last)
                .choice("outcome", "Outcome now", "select", ae_outcomes(), "resolved")
                .add("resolved_at", "Resolved at (only for a resolved outcome)", "datetime-local", "")
                .hint(RESOLVED_AT_HINT)
                .form("Update an adverse event's outcome", "Save the outcome", false, ""),
        );
    }
    if any {
        out.push(Fb::new("note", sent).add("text", "Note", "textarea", "").required().form(
            "Progress note",
            "Save the note",
            false,
            "",
        ));
    }
    if clinical && !done {
        out.push(Fb::new("abort", sent).add("reason", "Reason", "text", "").required().form(
            "End the session without (further) dosing",
            "Abort the session",
            false,
            "Final: it cannot be undone.",
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    sent: &Sent<'_>,
    refusal: Option<&AppError>,
    notice: Option<String>,
) -> PageResult<Html<String>> {
    let l = app::load(state, user, id).await?;
    let tz = zones(state, user.clinic).await?.of(l.row.location_id).clone();
    let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(l.row.patient_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let ctx = l.ctx();
    let s = l.session();
    let view = s.view(&ctx);
    let screens = app::pre_session_screens(state, user, &l.row).await?;
    let mut forms = forms(&l, user, &tz, sent, &screens);
    let mut error = None;
    if let Some(e) = refusal {
        let mut se = StepError { code: e.code().to_owned(), message: sentence(&e.public_message("")), field: None };
        match forms.iter_mut().find(|f| f.step == sent.step) {
            Some(f) => {
                se.field = f
                    .fields
                    .iter()
                    .find(|x| sent.field.as_deref() == Some(x.name))
                    .map(|x| (x.label.clone(), x.id.clone()));
                f.error = Some(se);
            }
            None => error = Some((sent.step.replace('_', " "), se)),
        }
    }
    let mut record = Vec::new();
    let mut line = |label: &str, value: String| record.push(Line { label: label.to_owned(), value });
    if let Some(c) = s.check_in() {
        let e = &c.details.escort;
        let confirmed = if c.details.escort_confirmed_in_person {
            "seen in person".to_owned()
        } else if let Some(x) = s.escort_confirmation() {
            format!(
                "confirmed {} at {}",
                if x.how == kapstone_domain::session::EscortConfirmation::InPerson { "in person" } else { "by phone" },
                hm(x.stamp.at, &tz)
            )
        } else {
            "NOT YET CONFIRMED".to_owned()
        };
        line("Checked in", stamp(&c.stamp, &tz));
        line(
            "Escort",
            format!(
                "{}{} · {} · {confirmed}",
                e.name,
                e.relationship.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                e.phone
            ),
        );
        if let Some(w) = c.details.weight {
            line("Weight", format!("{} kg", mg(w.kg)));
        }
    }
    for linked in s.screenings() {
        let c = screens.iter().find(|c| c.screening.response_id == linked.screening.response_id);
        let (at, portal) = c.map_or((linked.stamp.at, false), |c| (c.submitted_at, c.via_portal));
        line("Pre-session screener", screen_label(&linked.screening, at, portal, &tz));
    }
    for p in s.infusion_pauses() {
        let resumed = match &p.resumed {
            Some(r) => format!("; resumed {} by the {}: {}", hm(r.at, &tz), r.by.role.label().to_lowercase(), r.reason),
            None => "; PAUSED".into(),
        };
        let why = p.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        line("Infusion paused (MON-05)", format!("{}{why}{resumed}", stamp(&p.paused, &tz)));
    }
    for h in s.holds() {
        let released = match &h.released {
            Some(r) => format!("; released {} by {}: {}", hm(r.at, &tz), r.by.role.label(), r.reason),
            None => "; ACTIVE".into(),
        };
        line("Hold", format!("{}: {} ({}){released}", h.rule.code(), h.reason, stamp(&h.placed, &tz)));
    }
    for c in s.bp_confirmations() {
        line("Pre-dose BP confirmed (MON-01)", format!("{} ({})", c.reason, stamp(&c.stamp, &tz)));
    }
    if let Some(o) = s.ordered() {
        let c = &o.calculation;
        let mut v = format!("{} mg", mg(c.dose_mg));
        if let Some(k) = c.dose_mg_per_kg {
            v.push_str(&format!(" ({} mg/kg", mg(k)));
            if let Some(w) = c.dosing_weight_kg {
                v.push_str(&format!(" × {} kg", mg(w)));
            }
            v.push(')');
        }
        if let Some(ml) = c.volume_ml {
            v.push_str(&format!(", {} mL", mg(ml)));
        }
        if let Some(m) = c.infusion_minutes {
            v.push_str(&format!(" over {} min", mg(m)));
        }
        if let Some(r) = &o.override_reason {
            v.push_str(&format!("; override: {r}"));
        }
        line("Dose ordered", format!("{v} ({})", stamp(&o.stamp, &tz)));
    }
    if let Some(v) = s.verified() {
        line("Dose checked", stamp(v, &tz));
    }
    if let Some(c) = s.cleared() {
        line("Cleared for dosing", stamp(c, &tz));
    }
    if let Some(a) = s.administration() {
        let d = &a.details;
        line(
            "Administration",
            format!(
                "{}{} · lot {} · expiry {} · {} mg · route {} · started {}{}",
                d.product,
                d.ndc.as_deref().map(|n| format!(" (NDC {n})")).unwrap_or_default(),
                d.lot,
                d.expiry,
                mg(d.dose_mg),
                d.route_snomed,
                hm(a.started_at, &tz),
                a.ended_at.map(|e| format!(", ended {}", hm(e, &tz))).unwrap_or_default()
            ),
        );
        if let Some(r) = &a.end_reason {
            line("Ended early because", r.clone());
        }
    }
    if !s.devices().is_empty() {
        line("Devices", s.devices().iter().map(|t| hm(*t, &tz)).collect::<Vec<_>>().join(", "));
    }
    for o in s.observations() {
        let mut v = format!("{} ({})", o.observation.label(), stamp(&o.stamp, &tz));
        if let Some(n) = &o.note {
            v.push_str(&format!(": {n}"));
        }
        line("Warning sign flagged", v);
    }
    for (i, ae) in s.adverse_events().iter().enumerate() {
        line(&format!("Adverse event {}", i + 1), ae_summary(ae, &tz));
    }
    if let Some(e) = s.experience_ended() {
        line("Experience over", stamp(e, &tz));
    }
    if let Some(a) = s.discharge_assessment() {
        line("Discharge assessment", stamp(&a.stamp, &tz));
    }
    if let Some(d) = s.discharged() {
        line("Discharged", stamp(d, &tz));
    }
    if let Some(a) = s.aborted() {
        line("Aborted", format!("{} ({})", a.reason, stamp(&a.stamp, &tz)));
    }
    // From the log rather than the fold, so a reading entered after it was taken says when.
    let mut readings: Vec<ReadingLine> = {
        let mut rs: Vec<(&Reading, UtcTs)> = l
            .events
            .iter()
            .filter_map(|e| match &e.event {
                SessionEvent::Reading(r) => Some((r, e.at)),
                _ => None,
            })
            .collect();
        rs.sort_by_key(|(r, _)| std::cmp::Reverse(r.taken_at));
        rs.into_iter().map(|(r, at)| reading_line(r, at, &tz)).collect()
    };
    readings.truncate(60);
    let (criteria, discharge_ready, earliest_discharge) = match &view.discharge {
        Some(d) => (
            d.criteria
                .iter()
                .map(|c| {
                    let (status, label) = match c.status {
                        CriterionStatus::Met => ("met", "Met"),
                        CriterionStatus::Unmet => ("unmet", "Not met"),
                        CriterionStatus::NotYetRecorded => ("missing", "Not recorded"),
                    };
                    CriterionLine { id: c.id, title: c.title, status, label, reason: c.reason.clone() }
                })
                .collect(),
            d.ready,
            d.earliest_at.map(|t| hm(t, &tz)),
        ),
        None => (Vec::new(), false, None),
    };
    // The integration session that follows (KAP-SPEC 2.1 stage 7): booked, or to book.
    let types = crate::app::scheduling::types(state, user).await?;
    let now = jiff::Timestamp::now();
    let next_integration =
        kapstone_store::scheduling::appointments_of_patient(&state.db, PatientId::from_uuid(l.row.patient_id))
            .await?
            .into_iter()
            .filter(|a| a.status == "booked" && crate::app::scheduling::to_jiff(a.start_at.0) > now)
            .filter(|a| {
                types.iter().any(|(id, t, _)| {
                    *id == a.type_id && t.kind == kapstone_domain::scheduling::AppointmentKind::Integration
                })
            })
            .min_by_key(|a| a.start_at.0.unix_micros())
            .map(|a| {
                let z = crate::app::scheduling::to_jiff(a.start_at.0).to_zoned(tz.clone());
                format!("{} {:02}:{:02}", z.date(), z.hour(), z.minute())
            });
    let advisories =
        kapstone_domain::session::advice::advisories(&s, &ctx).into_iter().map(|a| (a.code, a.message)).collect();
    let stock = if kapstone_domain::permissions::allows(
        Some(user.role),
        kapstone_domain::permissions::Action::ReadControlledSubstances,
    ) {
        crate::app::ledger::dosing::of_session(state, user, &l.row)
            .await?
            .draws
            .into_iter()
            .map(|d| {
                let mut text = format!("Drew {} of {}, lot {}", d.drawn, d.product, d.lot);
                if let Some(a) = &d.administered {
                    text.push_str(&format!("; given {a}"));
                }
                if let Some(w) = &d.wasted {
                    text.push_str(&format!("; wasted {w}"));
                }
                let waste = (d.remainder_mg > 0.0 && d.administered.is_some()).then(|| {
                    text.push_str(&format!("; {} mg still to waste", d.remainder));
                    format!("/cs?location={}#waste-{}", l.row.location_id, d.draw)
                });
                (text, waste)
            })
            .collect()
    } else {
        Vec::new()
    };
    render(&SessionPage {
        stock,
        next_integration,
        advisories,
        spravato: l.protocol.route == Route::SpravatoIntranasal,
        layout: Layout::for_user(&format!("Session {}", initials(&p.given_name, &p.family_name)), user, "/floor"),
        id,
        patient: format!("{} {}", p.given_name, p.family_name),
        initials: initials(&p.given_name, &p.family_name),
        patient_id: l.row.patient_id,
        protocol_title: l.protocol.title.clone(),
        protocol_ref: format!("{} version {}", l.protocol.id, l.protocol.version),
        state: view.state.as_str(),
        state_label: view.state.label(),
        minutes_since_dose: view.minutes_since_dose,
        zone: tz.iana_name().unwrap_or("UTC").to_owned(),
        // A session that has ended has no next step: the page says so instead of a blocker.
        blockers: view
            .blocked_by
            .iter()
            .filter(|_| !view.state.is_final())
            .map(|b| BlockerLine { code: b.code, message: b.message.clone(), who: roles(&b.unblocked_by) })
            .collect(),
        checks: view
            .checks
            .iter()
            .map(|c| {
                let (status, label) = check_status(c.status);
                CheckLine { kind: c.check.kind.label(), due: hm(c.check.due_at, &tz), status, label }
            })
            .collect(),
        alerts: view
            .unacknowledged_alerts
            .iter()
            .map(|a| AlertLine {
                id: a.id,
                rule: a.alert.rule,
                message: a.alert.message.clone(),
                raised: hm(a.raised_at, &tz),
            })
            .collect(),
        can_acknowledge: matches!(user.role, Role::Nurse | Role::Prescriber),
        readings,
        record,
        criteria,
        discharge_ready,
        earliest_discharge,
        notes: s.notes().iter().map(|n| Line { label: stamp(&n.stamp, &tz), value: n.text.clone() }).collect(),
        forms,
        error,
        notice,
    })
}

/// What a step saved, in words for the notice after it ("Saved: the check-in.").
fn saved_what(step: &str) -> String {
    match step {
        "check_in" => "the check-in",
        "escort" => "the escort's confirmation",
        "vitals" => "the vitals",
        "scores" => "the scores",
        "observation" => "the warning sign; its alert is waiting below",
        "bp_confirm" => "the confirmation of the pre-dose blood pressure",
        "hold" => "the hold",
        "release" => "the release of the hold",
        "order" => "the dose order",
        "verify" => "the second check of the dose",
        "clear" => "the clearance for dosing",
        "administer" => "the start of the administration",
        "device" => "the device",
        "end_administration" => "the end of the administration",
        "pause_infusion" => "the pause of the infusion; the prescriber decides when it goes on",
        "resume_infusion" => "the resumption of the infusion",
        "link_screening" => "the screener's link to this session",
        "end_experience" => "the end of the experience; recovery has begun",
        "adverse_event" => "the adverse event",
        "ae_update" => "the adverse event's outcome",
        "note" => "the note",
        "assessment" => "the discharge assessment",
        "discharge" => "the discharge",
        "abort" => "the end of the session",
        "acknowledge" => "the acknowledgement",
        other => return other.replace('_', " "),
    }
    .to_owned()
}

/// `GET /sessions/{id}`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let notice = q.saved.filter(|s| !s.is_empty()).map(|s| format!("Saved: {}.", saved_what(&s)));
    let sent = Sent { step: "", pairs: &[], field: None };
    page(&state, &user, id, &sent, None, notice).await
}

/// `POST /schedule/appointments/{id}/session`: opens the appointment's dosing session (or finds
/// it) and goes there.
pub async fn open(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> PageResult<Response> {
    let appointment: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let (id, _) = app::open(&state, &user, appointment).await?;
    Ok(Redirect::to(&format!("/sessions/{id}")).into_response())
}

/// `POST /sessions/{id}/record`: one step, named by the `step` field.
pub async fn record(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let step = get(&pairs, "step");
    match run(&state, &user, id, &step, &pairs).await {
        Ok(()) => Ok(Redirect::to(&format!("/sessions/{id}?saved={step}")).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Refused { .. } | AppError::BadRequest { .. })) => {
            let field = e.field().map(form_field);
            let sent = Sent { step: &step, pairs: &pairs, field };
            let page = page(&state, &user, id, &sent, Some(&e), None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// From a form to the domain's events
// ---------------------------------------------------------------------------------------------

/// The form input a refusal's field names (`state_of_mind.mood` is the check-in's `mood`).
fn form_field(field: &str) -> String {
    match field {
        "state_of_mind.alcohol_or_substances_last_12h" => "alcohol".into(),
        "state_of_mind.intoxication_signs" => "intoxication".into(),
        "onset_at" => "onset".into(),
        f => f.replace("state_of_mind.", "").replace('.', "_"),
    }
}

fn get(pairs: &[(String, String)], k: &str) -> String {
    pairs.iter().find(|(n, _)| n == k).map_or_else(String::new, |(_, v)| v.trim().to_owned())
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

fn opt_text(pairs: &[(String, String)], k: &str) -> Value {
    let v = get(pairs, k);
    if v.is_empty() { Value::Null } else { Value::String(v) }
}

fn number(pairs: &[(String, String)], k: &'static str) -> Result<Option<f64>, AppError> {
    let v = get(pairs, k).replace(',', ".");
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite()).map(Some).ok_or_else(|| invalid(k, "give a number"))
}

fn yes(pairs: &[(String, String)], k: &str) -> bool {
    matches!(get(pairs, k).as_str(), "yes" | "on" | "true")
}

/// A local "HH:MM" of today (or yesterday, when that time has not come yet today).
fn local_time(pairs: &[(String, String)], k: &'static str, tz: &TimeZone) -> Result<Option<UtcTs>, AppError> {
    let raw = get(pairs, k);
    if raw.is_empty() {
        return Ok(None);
    }
    let t: jiff::civil::Time = raw.parse().map_err(|_| invalid(k, "give a time as HH:MM"))?;
    let now = Timestamp::now();
    let today = now.to_zoned(tz.clone()).date();
    let at = |d: jiff::civil::Date| d.to_datetime(t).to_zoned(tz.clone()).map(|z| z.timestamp());
    let mut ts = at(today).map_err(|_| invalid(k, "give a time as HH:MM"))?;
    if ts > now
        && let Some(y) = today.yesterday().ok()
    {
        ts = at(y).map_err(|_| invalid(k, "give a time as HH:MM"))?;
    }
    Ok(Some(from_jiff(ts)))
}

/// A reading's "taken at": a local "HH:MM" of today in the location's zone. Never moved to
/// another day: a time still to come is the domain's to refuse (a reading is not taken after it is
/// recorded), and the page shows that refusal with the clock.
fn taken_at(pairs: &[(String, String)], tz: &TimeZone) -> Result<Option<UtcTs>, AppError> {
    let raw = get(pairs, "taken_at");
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || invalid("taken_at", "give the time the reading was taken as HH:MM");
    let t: jiff::civil::Time = raw.parse().map_err(|_| bad())?;
    let today = Timestamp::now().to_zoned(tz.clone()).date();
    let z = today.to_datetime(t).to_zoned(tz.clone()).map_err(|_| bad())?;
    Ok(Some(from_jiff(z.timestamp())))
}

/// A date and time in the location's zone ("2026-03-04T10:45", as a `datetime-local` input sends
/// it), or a time alone for today.
fn local_date_time(pairs: &[(String, String)], k: &'static str, tz: &TimeZone) -> Result<Option<UtcTs>, AppError> {
    let raw = get(pairs, k);
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || invalid(k, "give a date and time (YYYY-MM-DD HH:MM) or a time today (HH:MM)");
    let dt = match raw.parse::<jiff::civil::DateTime>() {
        Ok(dt) => dt,
        Err(_) => {
            let t: jiff::civil::Time = raw.parse().map_err(|_| bad())?;
            Timestamp::now().to_zoned(tz.clone()).date().to_datetime(t)
        }
    };
    let z = dt.to_zoned(tz.clone()).map_err(|_| bad())?;
    Ok(Some(from_jiff(z.timestamp())))
}

fn event(v: Value) -> Result<Input, AppError> {
    let e: SessionEvent = serde_path_to_error::deserialize(&v).map_err(|e| {
        let path = e.path().to_string();
        AppError::BadRequest { field: (path != ".").then_some(path), message: e.into_inner().to_string() }
    })?;
    Ok(Input::Event(e))
}

fn ts(t: UtcTs) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// "PHQ-9 total 7 · answered in the portal at 08:10".
fn screen_label(s: &kapstone_domain::session::Screening, at: UtcTs, via_portal: bool, tz: &TimeZone) -> String {
    let what = match (s.total, s.cssrs_risk) {
        (Some(t), _) => format!("PHQ-9 total {t}"),
        (None, Some(kapstone_domain::instruments::cssrs::Risk::None)) => "C-SSRS screener: no risk identified".into(),
        (None, Some(r)) => format!("C-SSRS screener: {} risk", r.as_str()),
        (None, None) => "Screener".to_owned(),
    };
    let z = crate::app::scheduling::to_jiff(at).to_zoned(tz.clone());
    let place = if via_portal { "in the portal" } else { "with staff" };
    format!("{what} · answered {place} on {} at {:02}:{:02}", z.date(), z.hour(), z.minute())
}

fn inputs(step: &str, pairs: &[(String, String)], tz: &TimeZone, protocol_id: &str) -> Result<Vec<Input>, AppError> {
    let now = UtcTs::now();
    let one = |v: Value| event(v).map(|e| vec![e]);
    match step {
        "check_in" => {
            let mood = get(pairs, "mood");
            let mood = match mood.parse::<u8>() {
                Ok(n) => json!(n),
                Err(_) if mood.is_empty() => return Err(invalid("mood", "give the mood from 0 to 10, or in words")),
                Err(_) => json!(mood),
            };
            let weight = number(pairs, "weight_kg")?.map(|kg| json!({"kg": kg, "measured_at": ts(now)}));
            one(json!({"kind": "checked_in",
                "escort": {"name": get(pairs, "escort_name"), "phone": get(pairs, "escort_phone"),
                    "relationship": opt_text(pairs, "escort_relationship")},
                "escort_confirmed_in_person": yes(pairs, "escort_confirmed_in_person"),
                "state_of_mind": {"mood": mood, "sleep_hours": number(pairs, "sleep_hours")?,
                    "last_food_at": local_time(pairs, "last_food_at", tz)?.map(ts),
                    "last_fluid_at": local_time(pairs, "last_fluid_at", tz)?.map(ts),
                    "last_nasal_spray_at": local_time(pairs, "last_nasal_spray_at", tz)?.map(ts),
                    "alcohol_or_substances_last_12h": yes(pairs, "alcohol"),
                    "intoxication_signs": yes(pairs, "intoxication"),
                    "medication_changes": opt_text(pairs, "medication_changes")},
                "pregnancy": get(pairs, "pregnancy"),
                "weight": weight}))
        }
        "escort" => one(json!({"kind": "escort_confirmed", "how": get(pairs, "how")})),
        "vitals" => {
            let mut body = serde_json::Map::new();
            for k in ["systolic", "diastolic", "heart_rate", "spo2", "resp_rate"] {
                if let Some(v) = number(pairs, k)? {
                    body.insert(k.to_owned(), json!(v));
                }
            }
            let body: crate::api::sessions::VitalsBody =
                serde_json::from_value(Value::Object(body)).map_err(|e| AppError::Internal(e.into()))?;
            let readings = crate::api::sessions::vitals_readings(&body, taken_at(pairs, tz)?.unwrap_or(now))?;
            Ok(readings.into_iter().map(|r| Input::Event(SessionEvent::Reading(r))).collect())
        }
        "scores" => {
            let mut out = Vec::new();
            let at = taken_at(pairs, tz)?.unwrap_or(now);
            let reading = |measurement| Input::Event(SessionEvent::Reading(Reading { taken_at: at, measurement }));
            if let Some(v) = number(pairs, "moaas")? {
                let score = u8::try_from(v as i64)
                    .ok()
                    .and_then(|v| Moaas::new(v).ok())
                    .ok_or_else(|| invalid("moaas", "MOAA/S is 0 to 5"))?;
                out.push(reading(Measurement::Moaas { score }));
            }
            if let Some(v) = number(pairs, "cadss23")? {
                let score = u8::try_from(v as i64)
                    .ok()
                    .filter(|_| v.fract() == 0.0 && v >= 0.0)
                    .and_then(|v| Cadss23::new(v).ok())
                    .ok_or_else(|| invalid("cadss23", "the CADSS total is a whole number from 0 to 92"))?;
                out.push(reading(Measurement::Cadss { score: Cadss::Cadss23(score) }));
            }
            if let Some(v) = number(pairs, "cadss6")? {
                if out.iter().any(|i| matches!(i, Input::Event(SessionEvent::Reading(r)) if matches!(r.measurement, Measurement::Cadss { .. }))) {
                    return Err(invalid("cadss6", "give the 23-item total or the CADSS-6 total, not both"));
                }
                let score = u8::try_from(v as i64)
                    .ok()
                    .filter(|_| v.fract() == 0.0 && v >= 0.0)
                    .and_then(|v| Cadss6::new(v).ok())
                    .ok_or_else(|| invalid("cadss6", "the CADSS-6 total is a whole number from 0 to 24"))?;
                out.push(reading(Measurement::Cadss { score: Cadss::Cadss6(score) }));
            }
            if out.is_empty() {
                return Err(invalid("moaas", "give a MOAA/S or a CADSS score"));
            }
            Ok(out)
        }
        "bp_confirm" => one(json!({"kind": "pre_dose_bp_confirmed", "reason": get(pairs, "reason")})),
        "hold" => one(json!({"kind": "hold_placed", "rule": get(pairs, "rule"), "reason": get(pairs, "reason")})),
        "release" => one(json!({"kind": "hold_released", "reason": get(pairs, "reason")})),
        "order" => {
            let request = json!({"protocol": protocol_id,
                "dose_mg": number(pairs, "dose_mg")?, "dose_mg_per_kg": number(pairs, "dose_mg_per_kg")?,
                "stock_mg_per_ml": number(pairs, "stock_mg_per_ml")?, "diluted_with_equal_volume": yes(pairs, "diluted"),
                "infusion_minutes": number(pairs, "infusion_minutes")?, "bag_ml": number(pairs, "bag_ml")?,
                "tablet_mg": number(pairs, "tablet_mg")?});
            let request = serde_path_to_error::deserialize(&request).map_err(|e| AppError::BadRequest {
                field: Some(e.path().to_string()),
                message: e.into_inner().to_string(),
            })?;
            let reason = get(pairs, "override_reason");
            Ok(vec![Input::DoseOrder { request, override_reason: Some(reason).filter(|r| !r.is_empty()) }])
        }
        "verify" => one(json!({"kind": "dose_verified"})),
        "clear" => one(json!({"kind": "cleared_for_dosing"})),
        "administer" => {
            let dose = number(pairs, "dose_mg")?.ok_or_else(|| invalid("dose_mg", "give the dose given in mg"))?;
            let expiry = get(pairs, "expiry");
            if expiry.parse::<jiff::civil::Date>().is_err() {
                return Err(invalid("expiry", "give the expiry date on the product"));
            }
            one(
                json!({"kind": "administration_started", "product": get(pairs, "product"), "ndc": opt_text(pairs, "ndc"),
                "lot": get(pairs, "lot"), "expiry": expiry, "dose_mg": dose, "route_snomed": get(pairs, "route_snomed")}),
            )
        }
        "device" => one(json!({"kind": "device_given"})),
        "end_administration" => one(json!({"kind": "administration_ended", "reason": opt_text(pairs, "reason")})),
        "pause_infusion" => one(json!({"kind": "infusion_paused", "reason": opt_text(pairs, "reason")})),
        "resume_infusion" => one(json!({"kind": "infusion_resumed", "reason": get(pairs, "reason")})),
        "link_screening" => {
            let id = get(pairs, "response_id");
            let response_id = id.trim().parse().map_err(|_| invalid("response_id", "choose a screener to link"))?;
            Ok(vec![Input::LinkScreening { response_id }])
        }
        "end_experience" => one(json!({"kind": "experience_ended"})),
        "adverse_event" => {
            let onset = local_time(pairs, "onset", tz)?.unwrap_or(now);
            let many = |k: &str| -> Vec<String> {
                pairs.iter().filter(|(n, v)| n == k && !v.is_empty()).map(|(_, v)| v.clone()).collect()
            };
            let parts = json!({"code": get(pairs, "code"), "onset_at": ts(onset),
                "severity": get(pairs, "severity"), "seriousness": many("seriousness"), "actions": many("actions"),
                "action_details": opt_text(pairs, "action_details"), "outcome": get(pairs, "outcome"),
                "resolved_at": local_date_time(pairs, "resolved_at", tz)?.map(ts)});
            let ae = crate::api::sessions::adverse_event(&parts)?;
            Ok(vec![Input::Event(SessionEvent::AdverseEventRecorded(ae))])
        }
        "ae_update" => {
            let number: usize =
                get(pairs, "number").parse().map_err(|_| invalid("number", "choose the adverse event"))?;
            one(json!({"kind": "adverse_event_updated", "number": number, "outcome": get(pairs, "outcome"),
                "resolved_at": local_date_time(pairs, "resolved_at", tz)?.map(ts)}))
        }
        "observation" => {
            let observation = get(pairs, "observation");
            if observation.is_empty() {
                return Err(invalid("observation", "choose the sign you see or the patient reports"));
            }
            one(json!({"kind": "observation_flagged", "observation": observation, "note": opt_text(pairs, "note")}))
        }
        "note" => one(json!({"kind": "progress_note", "text": get(pairs, "text")})),
        "assessment" => one(json!({"kind": "discharge_assessment",
            "ready_to_leave": yes(pairs, "ready_to_leave"), "on_room_air": yes(pairs, "on_room_air"),
            "escort_present": yes(pairs, "escort_present"), "cssrs_at_discharge": opt_text(pairs, "cssrs_at_discharge"),
            "recovery": {"oriented": yes(pairs, "oriented"), "can_talk": yes(pairs, "can_talk"),
                "sits_up_and_walks_steadily_unaided": yes(pairs, "walks"),
                "nausea_controlled": yes(pairs, "nausea_controlled"), "adequately_hydrated": yes(pairs, "hydrated")}})),
        "discharge" => one(json!({"kind": "discharged", "instructions_given": yes(pairs, "instructions_given")})),
        "abort" => one(json!({"kind": "aborted", "reason": get(pairs, "reason")})),
        "acknowledge" => {
            let alert: u32 = get(pairs, "alert_id").parse().map_err(|_| invalid("alert_id", "choose an alert"))?;
            one(json!({"kind": "alert_acknowledged", "alert_id": alert, "note": opt_text(pairs, "note")}))
        }
        _ => Err(AppError::BadRequest { field: Some("step".into()), message: "unknown step".into() }),
    }
}

async fn run(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    step: &str,
    pairs: &[(String, String)],
) -> Result<(), AppError> {
    let row = kapstone_store::dosing::session(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let tz = zones(state, user.clinic).await?.of(row.location_id).clone();
    match app::record(state, user, id, inputs(step, pairs, &tz, &row.protocol_id)?, None).await {
        Ok(_) => Ok(()),
        Err(e) => Err(reading_time_refusal(step, pairs, &tz, e)),
    }
}

/// A back-dated reading the domain refuses for its time (ahead of the clock, out of order) is
/// put in the words of the form: the time given, the clinic's clock, and what to do.
fn reading_time_refusal(step: &str, pairs: &[(String, String)], tz: &TimeZone, e: AppError) -> AppError {
    let given = get(pairs, "taken_at");
    match e {
        AppError::Refused { code, field: Some("taken_at" | "at"), message }
            if matches!(step, "vitals" | "scores") && !given.is_empty() =>
        {
            let now = hm(UtcTs::now(), tz);
            AppError::Refused {
                code,
                field: Some("taken_at"),
                message: format!(
                    "{}: taken at {given} today, and it is now {now} (clinic time). Give the time on the monitor \
                     or the chart, or leave it empty for a reading taken now",
                    message.trim_end_matches('.')
                ),
            }
        }
        other => other,
    }
}
