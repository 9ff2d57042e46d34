//! Measured outcomes (issue 7, KAP-SPEC 2.1 stages 8–9, 7.1–7.3, TV-PHQ-R1..R5): a patient's
//! PHQ-9, GAD-7 and PCL-5 over time with baseline, latest, change, response and remission
//! computed by the domain under the clinic's versioned outcome settings; the clinic dashboard;
//! and the prescriber's course review (continue / modify / stop with a reason).

use jiff::ToSpan;
use jiff::civil::Date;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::course::{self, CourseOptions, CourseStatus, ReviewDecision, Template, UnderReview};
use kapstone_domain::instruments::Instrument;
use kapstone_domain::outcomes::{
    self, Judgement, NotComputed, OutcomeSettings, Pair, Pcl5Change, Rate, Score, Summary,
};
use kapstone_domain::{FieldError, PatientId, UtcTs};
use kapstone_store::outcomes::{self as store, Period};
use kapstone_store::{audit, clinics};
use serde::Serialize;
use uuid::Uuid;

use super::scheduling::{from_jiff, time_zone, to_jiff};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// The instruments charted, in display order.
pub const INSTRUMENTS: [Instrument; 3] = [Instrument::Phq9, Instrument::Gad7, Instrument::Pcl5];

pub fn title(i: Instrument) -> &'static str {
    match i {
        Instrument::Phq9 => "PHQ-9",
        Instrument::Gad7 => "GAD-7",
        Instrument::Pcl5 => "PCL-5",
        Instrument::CssrsScreener => "C-SSRS screener",
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Point {
    /// RFC 3339, UTC.
    pub at: String,
    pub total: u8,
}

impl From<Score> for Point {
    fn from(s: Score) -> Self {
        Point { at: s.at.rfc3339(), total: s.total }
    }
}

/// One instrument's outcome for one patient, as the API returns it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InstrumentOutcome {
    pub instrument: &'static str,
    pub title: &'static str,
    /// The baseline total (`null`: no score before the first dose).
    pub baseline: Option<u8>,
    pub baseline_at: Option<String>,
    pub latest: Option<u8>,
    pub latest_at: Option<String>,
    /// Baseline to latest in percent of the baseline (negative: fewer symptoms); `null` until a
    /// follow-up is taken after the first dose, or for a baseline of 0.
    pub change_pct: Option<f64>,
    pub change_points: Option<i16>,
    /// `true`/`false`, or `null` when not computed (see `response_not_computed`).
    pub response: Option<bool>,
    pub remission: Option<bool>,
    /// Why response is `null`: `no_follow_up`, `no_baseline`, `no_definition` (PCL-5),
    /// `baseline_below_moderate`, `baseline_zero`.
    pub response_not_computed: Option<&'static str>,
    pub remission_not_computed: Option<&'static str>,
    /// PCL-5 only: `clinically_meaningful`, `reliable` or `below_reliable`.
    pub pcl5_change: Option<Pcl5Change>,
    pub series: Vec<Point>,
    /// The domain's scores, for the chart.
    #[serde(skip)]
    pub scores: Vec<Score>,
}

fn why(j: Judgement) -> Option<&'static str> {
    match j {
        Judgement::NotComputed(NotComputed::NoDefinition) => Some("no_definition"),
        Judgement::NotComputed(NotComputed::BaselineBelowModerate) => Some("baseline_below_moderate"),
        Judgement::NotComputed(NotComputed::BaselineZero) => Some("baseline_zero"),
        Judgement::Yes | Judgement::No => None,
    }
}

impl InstrumentOutcome {
    fn of(o: &outcomes::Outcome) -> Self {
        let missing = if o.baseline.is_none() { "no_baseline" } else { "no_follow_up" };
        let (response_nc, remission_nc) = match &o.change {
            Some(c) => (why(c.response), why(c.remission)),
            None if o.instrument == Instrument::Pcl5 => (Some("no_definition"), Some("no_definition")),
            None => (Some(missing), Some(missing)),
        };
        InstrumentOutcome {
            instrument: o.instrument.as_str(),
            title: title(o.instrument),
            baseline: o.baseline.map(|s| s.total),
            baseline_at: o.baseline.map(|s| s.at.rfc3339()),
            latest: o.latest.map(|s| s.total),
            latest_at: o.latest.map(|s| s.at.rfc3339()),
            change_pct: o.change.and_then(|c| c.percent()),
            change_points: o.change.map(|c| c.points),
            response: o.change.and_then(|c| c.response.as_option()),
            remission: o.change.and_then(|c| c.remission.as_option()),
            response_not_computed: response_nc,
            remission_not_computed: remission_nc,
            pcl5_change: o.change.and_then(|c| c.pcl5),
            series: o.series.iter().copied().map(Point::from).collect(),
            scores: o.series.clone(),
        }
    }

    /// "Baseline 20, latest 9 (−55.0 %): response; no remission." for pages and the chart's
    /// description.
    pub fn sentence(&self) -> String {
        let mut s = match (self.baseline, self.latest) {
            (None, None) => return format!("No {} score recorded yet.", self.title),
            (None, Some(l)) => format!("Latest {l}; no baseline before the first dose"),
            (Some(b), Some(l)) => format!("Baseline {b}, latest {l}"),
            (Some(b), None) => format!("Baseline {b}"),
        };
        if let Some(p) = self.change_pct {
            s.push_str(&format!(" ({p:+.1} %)"));
        }
        let yes_no = |v: Option<bool>, yes: &str, no: &str, nc: Option<&str>| match (v, nc) {
            (Some(true), _) => yes.to_owned(),
            (Some(false), _) => no.to_owned(),
            (None, Some("no_definition")) => String::new(),
            (None, Some("baseline_below_moderate")) => format!("{yes} not computed (baseline below moderate)"),
            (None, Some("baseline_zero")) => format!("{yes} not computed (baseline 0)"),
            (None, Some("no_baseline")) => format!("{yes} not computed (no baseline)"),
            (None, _) => format!("{yes} not computed yet (no score since the first dose)"),
        };
        let parts: Vec<String> = [
            yes_no(self.response, "response", "no response", self.response_not_computed),
            yes_no(self.remission, "remission", "no remission", self.remission_not_computed),
        ]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
        if !parts.is_empty() {
            s.push_str(": ");
            s.push_str(&parts.join("; "));
        }
        if let Some(c) = self.pcl5_change {
            s.push_str(match c {
                Pcl5Change::ClinicallyMeaningful => ": clinically meaningful change",
                Pcl5Change::Reliable => ": reliable change",
                Pcl5Change::BelowReliable => ": change below the reliable change",
            });
        }
        s.push('.');
        s
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Dose {
    pub at: String,
    pub protocol: String,
    #[serde(skip)]
    pub ts: UtcTs,
}

/// A patient's outcomes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PatientOutcomes {
    pub patient_id: PatientId,
    /// The clinic settings version whose outcome definitions were used.
    pub settings_version: i64,
    pub settings: OutcomeSettings,
    pub first_dose_at: Option<String>,
    pub doses: Vec<Dose>,
    /// Keyed by instrument: `phq9`, `gad7`, `pcl5`.
    pub instruments: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub outcomes: Vec<InstrumentOutcome>,
}

/// Computes the outcomes (no audit: the callers audit).
async fn compute(
    state: &AppState,
    clinic: kapstone_domain::ClinicId,
    patient: PatientId,
) -> Result<PatientOutcomes, AppError> {
    let settings = clinics::current_settings(&state.db, clinic).await?;
    let rows = store::scores_of(&state.db, clinic, patient).await?;
    let doses = store::doses_of(&state.db, clinic, patient).await?;
    outcomes_from(patient, &settings, &rows, doses)
}

/// A patient's outcomes from the rows `compute` reads: the PHQ-9, GAD-7 and PCL-5 scores oldest
/// first (as `store::scores_of`) and the doses oldest first (as `store::doses_of`). The chart
/// derives both from the rows it reads for its other panels.
pub fn outcomes_from(
    patient: PatientId,
    settings: &clinics::ClinicSettings,
    rows: &[store::ScoreRow],
    doses: Vec<store::DoseRow>,
) -> Result<PatientOutcomes, AppError> {
    let doses: Vec<Dose> =
        doses.into_iter().map(|(_, at, protocol)| Dose { at: at.0.rfc3339(), protocol, ts: at.0 }).collect();
    let first_dose = doses.first().map(|d| d.ts);
    let mut list = Vec::new();
    let mut map = serde_json::Map::new();
    for i in INSTRUMENTS {
        let scores: Vec<Score> = rows
            .iter()
            .filter(|(inst, _, _)| inst == i.as_str())
            .filter_map(|(_, at, total)| u8::try_from(*total).ok().map(|t| Score { at: at.0, total: t }))
            .collect();
        let o = InstrumentOutcome::of(&outcomes::evaluate(i, &scores, first_dose, &settings.outcomes));
        map.insert(i.as_str().to_owned(), serde_json::to_value(&o).map_err(|e| AppError::Internal(e.into()))?);
        list.push(o);
    }
    Ok(PatientOutcomes {
        patient_id: patient,
        settings_version: settings.version,
        settings: settings.outcomes,
        first_dose_at: first_dose.map(|d| d.rfc3339()),
        doses,
        instruments: map,
        outcomes: list,
    })
}

async fn audited(state: &AppState, user: &CurrentUser, patient: PatientId, what: &str) -> Result<(), AppError> {
    state.read_audit.record(read_event(user, patient, what)).await?;
    Ok(())
}

/// The audit event of a read of a patient's outcomes (`what`: which view).
pub fn read_event(user: &CurrentUser, patient: PatientId, what: &str) -> kapstone_domain::audit::NewAuditEvent {
    let mut e = user.event(AuditAction::OutcomesRead, "patient_outcomes", Outcome::Success);
    e.entity_id = Some(patient.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(what.to_owned());
    e
}

/// A patient's outcomes for a clinician (audited read).
pub async fn of_patient(state: &AppState, user: &CurrentUser, patient: PatientId) -> Result<PatientOutcomes, AppError> {
    kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let o = compute(state, user.clinic, patient).await?;
    audited(state, user, patient, "PHQ-9, GAD-7, PCL-5 outcomes").await?;
    Ok(o)
}

/// The signed-in patient's own outcomes: the id comes from the account, never from the request.
pub async fn own(state: &AppState, me: &CurrentUser) -> Result<PatientOutcomes, AppError> {
    let Some(patient) = me.patient else { return Err(AppError::Forbidden) };
    let o = compute(state, me.clinic, patient).await?;
    audited(state, me, patient, "own outcomes (portal)").await?;
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The clinic dashboard.

#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct DashboardQuery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StageCount {
    pub stage: String,
    pub label: &'static str,
    pub patients: i64,
    /// Withdrawn and completed patients are not active.
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProtocolSessions {
    pub protocol: String,
    pub route: Option<String>,
    pub sessions: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RateView {
    pub count: u32,
    pub of: u32,
    pub percent: Option<f64>,
    pub text: String,
}

impl From<Rate> for RateView {
    fn from(r: Rate) -> Self {
        RateView { count: r.count, of: r.of, percent: r.percent_tenths().map(|t| f64::from(t) / 10.0), text: r.text() }
    }
}

/// Response and remission at the end of induction for one instrument and group.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GroupSummary {
    pub instrument: &'static str,
    /// A route (`sublingual_lozenge` …) or `all`.
    pub route: String,
    /// A protocol id or `all`.
    pub protocol: String,
    /// Patients with a baseline and a follow-up (n).
    pub n: u32,
    pub response: RateView,
    pub response_not_computed: u32,
    pub remission: RateView,
    pub median_change_points: Option<f64>,
    pub median_change_percent: Option<f64>,
}

impl GroupSummary {
    fn of(route: &str, protocol: &str, s: Summary) -> Self {
        GroupSummary {
            instrument: s.instrument.as_str(),
            route: route.to_owned(),
            protocol: protocol.to_owned(),
            n: s.patients,
            response: s.response.into(),
            response_not_computed: s.response_not_computed,
            remission: s.remission.into(),
            median_change_points: s.median_change_points,
            median_change_percent: s.median_change_percent,
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RemsDue {
    /// Finished Spravato sessions whose REMS Patient Monitoring Form is not recorded yet.
    pub owed: i64,
    /// Of those, past the due date.
    pub overdue: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Dashboard {
    pub from: String,
    pub to: String,
    pub location: Option<Uuid>,
    pub settings_version: i64,
    pub patients_by_stage: Vec<StageCount>,
    pub active_patients: i64,
    pub sessions_held: i64,
    pub sessions_by_protocol: Vec<ProtocolSessions>,
    pub end_of_induction: Vec<GroupSummary>,
    /// How the end-of-induction figures are defined.
    pub end_of_induction_definition: &'static str,
    /// Questionnaires assigned by the measurement cadence (KAP-SPEC 7.10) for an active course,
    /// past their due time and not answered (now, whatever the period).
    pub overdue_measures: i64,
    pub overdue_measures_note: &'static str,
    pub open_safety_alerts: i64,
    pub rems_forms_due: RemsDue,
    pub stage_definition: &'static str,
}

const EOI_DEFINITION: &str = "Patients whose first dose falls in the period (at the location, when chosen), grouped \
     by the route and protocol of that first session. Baseline: the clinic's baseline rule (first score before the \
     first dose by default). Follow-up: the last score from the first dose to the end of induction, which is the \
     patient's first course review when one is recorded, else the end of the period.";
const OVERDUE_NOTE: &str = "Questionnaires the measurement cadence (KAP-SPEC 7.10) assigned for an active course, \
     past their due time and not yet answered, counted now whatever the period.";
const STAGE_DEFINITION: &str = "The pathway stage as the stored record tells it: the latest side state (on hold, \
     withdrawn, completed), an active treatment course (treatment), the latest signed decision (not eligible; \
     eligible without a course yet: consent and preparation), a consultation recorded (eligibility), else referral.";

fn stage_label(s: &str) -> &'static str {
    match s {
        "referral" => "Referral",
        "eligibility" => "Consultation recorded, awaiting decision",
        "ineligible" => "Not eligible",
        "consent_preparation" => "Eligible: consent and preparation",
        "treatment" => "In a treatment course",
        "on_hold" => "On hold",
        "withdrawn" => "Withdrawn",
        "completed" => "Completed",
        _ => "Other",
    }
}

fn parse_date(field: &'static str, raw: Option<&str>) -> Result<Option<Date>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<Date>().map(Some).map_err(|_| invalid(field, "give the date as YYYY-MM-DD")),
    }
}

/// The period and location the dashboard is for: `to` defaults to today, `from` to 90 days
/// before `to`; both are whole days in the clinic's time zone, `to` included.
async fn period(state: &AppState, user: &CurrentUser, q: &DashboardQuery) -> Result<(Period, Date, Date), AppError> {
    let zone_name = clinics::time_zone(&state.db, user.clinic).await?.unwrap_or_else(|| "UTC".into());
    let tz = time_zone(&zone_name)?;
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    let to = parse_date("to", q.to.as_deref())?.unwrap_or(today);
    let from = match parse_date("from", q.from.as_deref())? {
        Some(d) => d,
        None => to.checked_sub(90.days()).map_err(|_| invalid("to", "the date is out of range"))?,
    };
    if from > to {
        return Err(invalid("from", "the period starts after it ends"));
    }
    if (to - from).get_days() > 3660 {
        return Err(invalid("from", "choose a period of at most ten years"));
    }
    let location = match q.location.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let id: Uuid = raw.parse().map_err(|_| invalid("location", "not a location id"))?;
            let known = kapstone_store::scheduling::locations(&state.db, user.clinic).await?.iter().any(|l| l.id == id);
            if !known {
                return Err(invalid("location", "not a location of this clinic"));
            }
            Some(id)
        }
    };
    let start = |d: Date| -> Result<UtcTs, AppError> {
        let z = d.to_zoned(tz.clone()).map_err(|_| invalid("from", "the date is out of range"))?;
        Ok(from_jiff(z.timestamp()))
    };
    let end_day = to.checked_add(1.day()).map_err(|_| invalid("to", "the date is out of range"))?;
    Ok((Period { clinic: user.clinic, from: start(from)?, to: start(end_day)?, location }, from, to))
}

/// The dashboard's figures (prescribers and admins; aggregates only, the read is audited).
pub async fn dashboard(state: &AppState, user: &CurrentUser, q: &DashboardQuery) -> Result<Dashboard, AppError> {
    let (p, from, to) = period(state, user, q).await?;
    let settings = clinics::current_settings(&state.db, user.clinic).await?;
    let intake = settings.outcomes.baseline == outcomes::BaselineRule::Intake;
    let within = crate::content::rems_form().map(|d| d.submit_within_days).unwrap_or(7);
    let zone_name = clinics::time_zone(&state.db, user.clinic).await?.unwrap_or_else(|| "UTC".into());
    let tz = time_zone(&zone_name)?;
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    // Overdue when today is past session date + the days allowed: the dose was before the start
    // of (today − days allowed).
    let overdue_before = today
        .checked_sub(i64::from(within).days())
        .ok()
        .and_then(|d| d.to_zoned(tz).ok())
        .map_or(UtcTs::now(), |z| from_jiff(z.timestamp()));
    // The figures are independent reads: run them at once (each on its own pooled connection),
    // so the page waits for the slowest, not for the sum.
    let instruments = [Instrument::Phq9, Instrument::Gad7];
    let (stages, held, pairs, open_safety_alerts, overdue_measures, (owed, overdue)) = tokio::try_join!(
        store::patients_by_stage(&state.db, &p),
        store::sessions_held(&state.db, &p),
        store::end_of_induction_pairs(&state.db, &p, instruments.map(Instrument::as_str), intake),
        store::open_alerts(&state.db, &p),
        store::overdue_measures(&state.db, &p, UtcTs::now()),
        store::rems_forms_owed(&state.db, &p, super::rems::SPRAVATO, overdue_before),
    )?;
    let patients_by_stage: Vec<StageCount> = stages
        .into_iter()
        .map(|(stage, n)| StageCount {
            active: !matches!(stage.as_str(), "withdrawn" | "completed"),
            label: stage_label(&stage),
            stage,
            patients: n,
        })
        .collect();
    let active_patients = patients_by_stage.iter().filter(|s| s.active).map(|s| s.patients).sum();
    let protocols = super::protocols::current(state, user.clinic).await?;
    let route_of = |id: &str| protocols.find(id).map(|p| p.route.as_str().to_owned());
    let sessions_by_protocol: Vec<ProtocolSessions> = held
        .into_iter()
        .map(|(protocol, sessions)| ProtocolSessions { route: route_of(&protocol), protocol, sessions })
        .collect();
    let mut end_of_induction = Vec::new();
    for (k, i) in instruments.into_iter().enumerate() {
        let mut all: Vec<((String, String), Pair)> = Vec::new();
        let rows = pairs.iter().filter(|r| usize::try_from(r.0).ok() == Some(k));
        for (_, protocol, b, f, n) in rows.cloned() {
            let (Ok(baseline), Ok(follow_up)) = (u8::try_from(b), u8::try_from(f)) else { continue };
            let key = (route_of(&protocol).unwrap_or_default(), protocol);
            for _ in 0..n.max(0) {
                all.push((key.clone(), Pair { baseline, follow_up }));
            }
        }
        let pairs: Vec<Pair> = all.iter().map(|(_, p)| *p).collect();
        end_of_induction.push(GroupSummary::of("all", "all", outcomes::summarize(i, &pairs, &settings.outcomes)));
        for ((route, protocol), s) in outcomes::summarize_by(i, &all, &settings.outcomes) {
            end_of_induction.push(GroupSummary::of(&route, &protocol, s));
        }
    }
    let sessions_held = sessions_by_protocol.iter().map(|s| s.sessions).sum();
    let mut e = user.event(AuditAction::OutcomeReportRead, "outcome_report", Outcome::Success);
    e.reason = Some(format!("from {from} to {to}{}", p.location.map(|l| format!(" location {l}")).unwrap_or_default()));
    state.read_audit.record(e).await?;
    Ok(Dashboard {
        from: from.to_string(),
        to: to.to_string(),
        location: p.location,
        settings_version: settings.version,
        patients_by_stage,
        active_patients,
        sessions_held,
        sessions_by_protocol,
        end_of_induction,
        end_of_induction_definition: EOI_DEFINITION,
        overdue_measures,
        overdue_measures_note: OVERDUE_NOTE,
        open_safety_alerts,
        rems_forms_due: RemsDue { owed, overdue },
        stage_definition: STAGE_DEFINITION,
    })
}

fn csv_field(s: &str) -> String {
    // Quote every field; a leading formula character is neutralised for spreadsheets.
    let s =
        if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() { format!("'{s}") } else { s.to_owned() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The dashboard as CSV: one row per figure (`section,instrument,route,protocol,n,measure,value`).
pub fn to_csv(d: &Dashboard) -> String {
    let mut out = String::from("section,instrument,route,protocol,n,measure,value\r\n");
    let mut row = |cols: [&str; 7]| {
        out.push_str(&cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    };
    row(["period", "", "", "", "", "from", &d.from]);
    row(["period", "", "", "", "", "to", &d.to]);
    row(["period", "", "", "", "", "location", &opt(d.location)]);
    row(["period", "", "", "", "", "settings_version", &d.settings_version.to_string()]);
    for s in &d.patients_by_stage {
        row(["patients_by_stage", "", "", "", "", &s.stage, &s.patients.to_string()]);
    }
    row(["active_patients", "", "", "", "", "patients", &d.active_patients.to_string()]);
    row(["sessions_held", "", "", "", "", "sessions", &d.sessions_held.to_string()]);
    for s in &d.sessions_by_protocol {
        row(["sessions_held", "", &opt(s.route.clone()), &s.protocol, "", "sessions", &s.sessions.to_string()]);
    }
    for g in &d.end_of_induction {
        let n = g.n.to_string();
        let base = |m: &str, v: String| {
            [
                String::from("end_of_induction"),
                g.instrument.into(),
                g.route.clone(),
                g.protocol.clone(),
                n.clone(),
                m.into(),
                v,
            ]
        };
        for r in [
            base("response", g.response.text.clone()),
            base("response_percent", opt(g.response.percent)),
            base("response_not_computed", g.response_not_computed.to_string()),
            base("remission", g.remission.text.clone()),
            base("remission_percent", opt(g.remission.percent)),
            base("median_change_points", opt(g.median_change_points)),
            base("median_change_percent", opt(g.median_change_percent)),
        ] {
            row([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
        }
    }
    row(["overdue_measures", "", "", "", "", "questionnaires", &d.overdue_measures.to_string()]);
    row(["open_safety_alerts", "", "", "", "", "alerts", &d.open_safety_alerts.to_string()]);
    row(["rems_forms_due", "", "", "", "", "owed", &d.rems_forms_due.owed.to_string()]);
    row(["rems_forms_due", "", "", "", "", "overdue", &d.rems_forms_due.overdue.to_string()]);
    out
}

// ---------------------------------------------------------------------------------------------
// Course review.

/// What a prescriber sends.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// `continue`, `modify` or `stop`.
    #[serde(default)]
    pub decision: String,
    /// For `modify`: the course options after the review.
    #[serde(default)]
    pub options: Option<CourseOptions>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReviewView {
    pub id: Uuid,
    pub course_id: Uuid,
    pub decision: String,
    pub reason: String,
    pub options: serde_json::Value,
    pub next_review_due: Option<String>,
    pub outcome_summary: serde_json::Value,
    pub settings_version: i64,
    pub reviewed_by: Uuid,
    pub reviewed_at: String,
    /// The course's status after the review.
    pub course_status: String,
    /// Future bookings of the course cancelled by a stop.
    pub cancelled_bookings: usize,
}

fn review_view(r: kapstone_store::outcomes::ReviewRow, course_status: &str, cancelled: usize) -> ReviewView {
    ReviewView {
        id: r.id,
        course_id: r.course_id,
        decision: r.decision,
        reason: r.reason,
        options: serde_json::from_str(&r.options).unwrap_or_default(),
        next_review_due: r.next_review_due,
        outcome_summary: serde_json::from_str(&r.outcome_summary).unwrap_or_default(),
        settings_version: r.settings_version,
        reviewed_by: r.reviewed_by,
        reviewed_at: r.reviewed_at.0.rfc3339(),
        course_status: course_status.to_owned(),
        cancelled_bookings: cancelled,
    }
}

/// The reviews of a course, oldest first (the caller has checked the course is readable).
pub async fn reviews(state: &AppState, user: &CurrentUser, course: Uuid) -> Result<Vec<ReviewView>, AppError> {
    let row = kapstone_store::scheduling::course(&state.db, user.clinic, course).await?.ok_or(AppError::NotFound)?;
    Ok(store::reviews_of_course(&state.db, user.clinic, course)
        .await?
        .into_iter()
        .map(|r| review_view(r, &row.status, 0))
        .collect())
}

/// The outcome summary a review is decided on (PHQ-9 and GAD-7, as the course page shows it).
pub fn summary_json(o: &PatientOutcomes) -> serde_json::Value {
    let items: Vec<serde_json::Value> = o
        .outcomes
        .iter()
        .map(|i| {
            serde_json::json!({
                "instrument": i.instrument, "baseline": i.baseline, "latest": i.latest,
                "change_pct": i.change_pct, "response": i.response, "remission": i.remission,
                "response_not_computed": i.response_not_computed,
            })
        })
        .collect();
    serde_json::json!({ "settings_version": o.settings_version, "instruments": items })
}

/// Records a course review (prescribers): the domain decides; the review is stored append-only
/// with the outcome summary it was decided on, the course moves on (a stop ends it and cancels
/// its future bookings), all audited in one transaction.
pub async fn review(
    state: &AppState,
    user: &CurrentUser,
    course_id: Uuid,
    input: &ReviewInput,
) -> Result<ReviewView, AppError> {
    let row = kapstone_store::scheduling::course(&state.db, user.clinic, course_id).await?.ok_or(AppError::NotFound)?;
    let template = Template::parse(&row.template).ok_or_else(|| AppError::Internal(anyhow::anyhow!("template")))?;
    let status = CourseStatus::parse(&row.status).ok_or_else(|| AppError::Internal(anyhow::anyhow!("status")))?;
    let options: CourseOptions = serde_json::from_str(&row.options).map_err(|e| AppError::Internal(e.into()))?;
    let decision = match input.decision.trim() {
        "continue" => ReviewDecision::Continue,
        "stop" => ReviewDecision::Stop,
        "modify" => ReviewDecision::Modify {
            options: input.options.ok_or_else(|| invalid("options", "give the course options after the change"))?,
        },
        _ => return Err(invalid("decision", "choose continue, modify or stop")),
    };
    let settings = clinics::current_settings(&state.db, user.clinic).await?;
    let zone_name = clinics::time_zone(&state.db, user.clinic).await?.unwrap_or_else(|| "UTC".into());
    let today = jiff::Timestamp::now().to_zoned(time_zone(&zone_name)?).date();
    let reviewed = course::review(
        &UnderReview { template, status, options },
        user.role,
        &decision,
        &input.reason,
        today,
        &settings.course_review,
    )
    .map_err(|r| match r.code {
        "role" => AppError::Forbidden,
        "state" => AppError::Conflict { field: "id", message: r.message },
        _ => AppError::Invalid(FieldError::new(r.field.unwrap_or("reason"), r.message)),
    })?;
    let patient = PatientId::from_uuid(row.patient_id);
    let outcomes = compute(state, user.clinic, patient).await?;
    let summary = summary_json(&outcomes).to_string();
    let options_json = serde_json::to_string(&reviewed.options).map_err(|e| AppError::Internal(e.into()))?;
    let next = reviewed.next_review_due.map(|d| d.to_string());
    let mut tx = state.db.begin().await?;
    let new = store::NewReview {
        clinic: user.clinic,
        course: course_id,
        patient,
        decision: decision.as_str(),
        options: &options_json,
        reason: &reviewed.reason,
        next_review_due: next.as_deref(),
        outcome_summary: &summary,
        settings_version: settings.version,
        by: user.id,
    };
    let id = store::record_review(&mut tx, &new, reviewed.status.as_str()).await?.ok_or_else(|| {
        AppError::Conflict { field: "id", message: "this course has ended; start a new course instead".into() }
    })?;
    let mut cancelled = 0;
    if reviewed.status == CourseStatus::Stopped {
        for a in store::future_bookings_of_course(&mut tx, course_id, UtcTs::now()).await? {
            let why = Some("course stopped at its review");
            if kapstone_store::scheduling::change_status(&mut tx, user.clinic, a, "cancelled", why, user.id).await? {
                cancelled += 1;
            }
        }
    }
    let mut e = user.event(AuditAction::CourseReviewed, "treatment_course", Outcome::Success);
    e.entity_id = Some(course_id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(format!(
        "review {id}: {} (settings v{}), {cancelled} future bookings cancelled",
        decision.as_str(),
        settings.version
    ));
    audit::append(&mut tx, &e).await?;
    // The outcomes read for the review, audited, and the review as stored, read back: in the same
    // transaction, so the answer is stored with the review (issue 9).
    audit::append(&mut tx, &read_event(user, patient, "outcomes shown at the course review")).await?;
    let stored = store::review_in(&mut tx, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let v = review_view(stored, reviewed.status.as_str(), cancelled);
    tx.commit_answering(&v).await?;
    Ok(v)
}

/// Dates in the clinic's zone for pages.
pub fn local_date(ts: UtcTs, tz: &jiff::tz::TimeZone) -> String {
    to_jiff(ts).to_zoned(tz.clone()).date().to_string()
}
