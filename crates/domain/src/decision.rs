//! The prescriber's eligibility decision (KAP-SPEC 2.1 stage 3 exit gate).
//!
//! [`check`] is the gate: no exclude finding can be signed away, every physician-review finding
//! that applies to a chosen route needs a reasoned disposition, data a rule needs must be
//! recorded, a route and course are chosen, and for Spravato the indication is documented. A
//! signed decision is never edited; a change is a new decision that amends it (the store keeps
//! the chain).

use serde::{Deserialize, Serialize};

use crate::consultation::InputError;
use crate::eligibility::{Evaluation, Family, FindingSeverity};

/// Routes a decision can allow (KAP-SPEC 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Spravato (esketamine) nasal spray, label use.
    SpravatoIntranasal,
    IntravenousRacemic,
    IntramuscularRacemic,
    /// Compounded sublingual/buccal lozenge or troche.
    SublingualLozenge,
    /// Compounded racemic nasal spray.
    IntranasalRacemic,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::SpravatoIntranasal,
        Route::IntravenousRacemic,
        Route::IntramuscularRacemic,
        Route::SublingualLozenge,
        Route::IntranasalRacemic,
    ];

    pub fn family(self) -> Family {
        if self == Route::SpravatoIntranasal { Family::Esketamine } else { Family::Racemic }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Route::SpravatoIntranasal => "spravato_intranasal",
            Route::IntravenousRacemic => "intravenous_racemic",
            Route::IntramuscularRacemic => "intramuscular_racemic",
            Route::SublingualLozenge => "sublingual_lozenge",
            Route::IntranasalRacemic => "intranasal_racemic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Route::SpravatoIntranasal => "Spravato (esketamine) nasal spray",
            Route::IntravenousRacemic => "IV ketamine infusion",
            Route::IntramuscularRacemic => "IM ketamine injection",
            Route::SublingualLozenge => "Sublingual/buccal ketamine lozenge",
            Route::IntranasalRacemic => "Intranasal racemic ketamine (compounded)",
        }
    }

    /// The course templates of KAP-SPEC 4.4 for this route; none is standard for compounded
    /// racemic nasal spray, whose course is individualised.
    pub fn course_templates(self) -> &'static [&'static str] {
        match self {
            Route::SpravatoIntranasal => &["SPRAVATO-TRD"],
            Route::IntravenousRacemic => &["IV-6"],
            Route::IntramuscularRacemic => &["KAP-IM"],
            Route::SublingualLozenge => &["KAP-SL"],
            Route::IntranasalRacemic => &[],
        }
    }
}

/// The Spravato indication (KAP-SPEC 2.1 stage 3: documented for Spravato).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpravatoIndication {
    /// Treatment-resistant depression (ELIG-029 reads the trials).
    Trd,
    /// Major depressive disorder with acute suicidal ideation or behaviour.
    MddWithAcuteSuicidalIdeation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Eligible,
    NotEligible,
}

/// The prescriber's answer to one physician-review finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disposition {
    pub rule_id: String,
    /// Whether treatment may go ahead despite the finding.
    pub acceptable: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteChoice {
    pub route: Route,
    #[serde(default)]
    pub course_template: Option<String>,
}

/// What the prescriber submits to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub verdict: Verdict,
    #[serde(default)]
    pub routes: Vec<RouteChoice>,
    #[serde(default)]
    pub spravato_indication: Option<SpravatoIndication>,
    #[serde(default)]
    pub dispositions: Vec<Disposition>,
    /// The clinical reasoning, in the prescriber's words.
    pub summary: String,
}

const MAX_REASON: usize = 4000;

fn reason_text(field: String, s: &str) -> Result<String, InputError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(InputError { field, message: "give a reason".into() });
    }
    if t.chars().count() > MAX_REASON || t.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
        return Err(InputError { field, message: format!("use at most {MAX_REASON} characters of plain text") });
    }
    Ok(t.to_owned())
}

fn err(field: &str, message: impl Into<String>) -> InputError {
    InputError { field: field.to_owned(), message: message.into() }
}

/// What the Spravato indications need from the record beyond the findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionContext {
    /// A major depressive disorder diagnosis (ICD-10-CM F32/F33) is recorded: both Spravato
    /// indications are for MDD (KAP-SPEC 3.3).
    pub mdd_diagnosed: bool,
    /// An oral antidepressant is on the medication list: the MDD-with-acute-suicidal-ideation
    /// indication is "in conjunction with an oral antidepressant" (KAP-SPEC 3.3).
    pub on_antidepressant: bool,
}

/// Checks a decision against the evaluation it was made on, and returns it with its text
/// trimmed. Pure: the caller re-evaluates from stored data, so a client cannot send findings.
pub fn check(
    evaluation: &Evaluation,
    context: &DecisionContext,
    request: &DecisionRequest,
) -> Result<DecisionRequest, InputError> {
    let mut out = request.clone();
    out.summary = reason_text("summary".into(), &request.summary)?;
    for (i, d) in request.dispositions.iter().enumerate() {
        let reviewable = evaluation
            .findings
            .iter()
            .any(|f| f.rule_id == d.rule_id && f.severity == FindingSeverity::PhysicianReview);
        if !reviewable {
            return Err(InputError {
                field: format!("dispositions[{i}].rule_id"),
                message: format!("{} is not a physician-review finding of this evaluation", d.rule_id),
            });
        }
        if request.dispositions[..i].iter().any(|p| p.rule_id == d.rule_id) {
            return Err(InputError { field: format!("dispositions[{i}].rule_id"), message: "listed twice".into() });
        }
        out.dispositions[i].reason = reason_text(format!("dispositions[{i}].reason"), &d.reason)?;
    }
    if request.verdict == Verdict::NotEligible {
        if !request.routes.is_empty() {
            return Err(err("routes", "a not-eligible decision allows no route"));
        }
        if request.spravato_indication.is_some() {
            return Err(err("spravato_indication", "a not-eligible decision has no Spravato indication"));
        }
        return Ok(out);
    }
    if request.routes.is_empty() {
        return Err(err("routes", "choose at least one route the patient may receive"));
    }
    for (i, choice) in request.routes.iter().enumerate() {
        if request.routes[..i].iter().any(|p| p.route == choice.route) {
            return Err(InputError { field: format!("routes[{i}].route"), message: "listed twice".into() });
        }
        let templates = choice.route.course_templates();
        match &choice.course_template {
            Some(t) if !templates.contains(&t.as_str()) => {
                let allowed =
                    if templates.is_empty() { "none (individualised)".to_owned() } else { templates.join(", ") };
                return Err(InputError {
                    field: format!("routes[{i}].course_template"),
                    message: format!("the course templates for {} are: {allowed}", choice.route.label()),
                });
            }
            None if !templates.is_empty() => {
                return Err(InputError {
                    field: format!("routes[{i}].course_template"),
                    message: format!("choose a course: {}", templates.join(", ")),
                });
            }
            _ => {}
        }
    }
    let spravato = request.routes.iter().any(|c| c.route == Route::SpravatoIntranasal);
    if spravato && request.spravato_indication.is_none() {
        return Err(err(
            "spravato_indication",
            "document the Spravato indication (TRD, or MDD with acute suicidal ideation)",
        ));
    }
    if !spravato && request.spravato_indication.is_some() {
        return Err(err("spravato_indication", "only a decision that allows Spravato records its indication"));
    }
    if spravato && !context.mdd_diagnosed {
        return Err(err(
            "spravato_indication",
            "Spravato is indicated for major depressive disorder: record the MDD diagnosis (F32/F33) in the consultation",
        ));
    }
    if request.spravato_indication == Some(SpravatoIndication::MddWithAcuteSuicidalIdeation)
        && !context.on_antidepressant
    {
        return Err(err(
            "spravato_indication",
            "for MDD with acute suicidal ideation Spravato is given with an oral antidepressant: none is on the medication list",
        ));
    }
    for choice in &request.routes {
        let route = choice.route;
        for f in evaluation.findings_for(route.family()) {
            // ELIG-029 is about the TRD indication; it does not apply to the other one.
            if f.rule_id == "ELIG-029" && request.spravato_indication != Some(SpravatoIndication::Trd) {
                continue;
            }
            match f.severity {
                FindingSeverity::Exclude => {
                    return Err(err(
                        "routes",
                        format!(
                            "{} ({}) excludes {}: an exclude finding cannot be signed away",
                            f.rule_id,
                            f.detail,
                            route.label()
                        ),
                    ));
                }
                FindingSeverity::MissingData => {
                    return Err(err(
                        "routes",
                        format!("{} cannot be decided for {}: {}", f.rule_id, route.label(), f.detail),
                    ));
                }
                FindingSeverity::PhysicianReview => {
                    match request.dispositions.iter().find(|d| d.rule_id == f.rule_id) {
                        None => {
                            return Err(err(
                                "dispositions",
                                format!("{} ({}) needs your disposition with a reason", f.rule_id, f.detail),
                            ));
                        }
                        Some(d) if !d.acceptable => {
                            return Err(err(
                                "routes",
                                format!(
                                    "you judged {} not acceptable, so {} cannot be allowed",
                                    f.rule_id,
                                    route.label()
                                ),
                            ));
                        }
                        Some(_) => {}
                    }
                }
                FindingSeverity::Precaution | FindingSeverity::Info => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::{Finding, Outcome, Scope};

    fn finding(id: &str, severity: FindingSeverity, scope: Scope) -> Finding {
        Finding {
            rule_id: id.into(),
            severity,
            scope,
            detail: "detail".into(),
            rationale: "why".into(),
            source: "S1".into(),
            missing: Vec::new(),
        }
    }

    fn evaluation(findings: Vec<Finding>) -> Evaluation {
        Evaluation {
            ruleset_version: "test".into(),
            outcome: Outcome::NeedsReview,
            esketamine: Outcome::NeedsReview,
            racemic: Outcome::NeedsReview,
            findings,
        }
    }

    fn ctx() -> DecisionContext {
        DecisionContext { mdd_diagnosed: true, on_antidepressant: true }
    }

    fn sl() -> RouteChoice {
        RouteChoice { route: Route::SublingualLozenge, course_template: Some("KAP-SL".into()) }
    }

    fn spravato() -> RouteChoice {
        RouteChoice { route: Route::SpravatoIntranasal, course_template: Some("SPRAVATO-TRD".into()) }
    }

    fn eligible(routes: Vec<RouteChoice>, dispositions: Vec<Disposition>) -> DecisionRequest {
        DecisionRequest {
            verdict: Verdict::Eligible,
            routes,
            spravato_indication: None,
            dispositions,
            summary: "Benefit outweighs risk.".into(),
        }
    }

    fn ok(id: &str) -> Disposition {
        Disposition { rule_id: id.into(), acceptable: true, reason: "BP controlled on repeat reading".into() }
    }

    #[test]
    fn an_exclude_finding_cannot_be_signed_away() {
        let e = evaluation(vec![finding("ELIG-011", FindingSeverity::Exclude, Scope::All)]);
        let r = check(&e, &ctx(), &eligible(vec![sl()], vec![]));
        assert_eq!(r.unwrap_err().field, "routes");
        // Not even with a disposition: exclude findings take none.
        let r = check(&e, &ctx(), &eligible(vec![sl()], vec![ok("ELIG-011")]));
        assert_eq!(r.unwrap_err().field, "dispositions[0].rule_id");
        // Not eligible is the decision that can be signed.
        let no = DecisionRequest { verdict: Verdict::NotEligible, ..eligible(vec![], vec![]) };
        assert!(check(&e, &ctx(), &no).is_ok());
    }

    #[test]
    fn an_exclusion_for_one_product_leaves_the_other() {
        let e = evaluation(vec![finding("ELIG-019", FindingSeverity::Exclude, Scope::Esketamine)]);
        assert!(check(&e, &ctx(), &eligible(vec![sl()], vec![])).is_ok());
        let mut req = eligible(vec![spravato()], vec![]);
        req.spravato_indication = Some(SpravatoIndication::Trd);
        assert_eq!(check(&e, &ctx(), &req).unwrap_err().field, "routes");
    }

    #[test]
    fn every_review_finding_needs_a_reasoned_disposition() {
        let e = evaluation(vec![finding("ELIG-007", FindingSeverity::PhysicianReview, Scope::All)]);
        assert_eq!(check(&e, &ctx(), &eligible(vec![sl()], vec![])).unwrap_err().field, "dispositions");
        let blank = Disposition { reason: "  ".into(), ..ok("ELIG-007") };
        assert_eq!(check(&e, &ctx(), &eligible(vec![sl()], vec![blank])).unwrap_err().field, "dispositions[0].reason");
        let declined = Disposition { acceptable: false, ..ok("ELIG-007") };
        assert_eq!(check(&e, &ctx(), &eligible(vec![sl()], vec![declined])).unwrap_err().field, "routes");
        assert!(check(&e, &ctx(), &eligible(vec![sl()], vec![ok("ELIG-007")])).is_ok());
    }

    #[test]
    fn missing_data_must_be_recorded_before_signing() {
        let e = evaluation(vec![finding("ELIG-011", FindingSeverity::MissingData, Scope::All)]);
        assert_eq!(check(&e, &ctx(), &eligible(vec![sl()], vec![])).unwrap_err().field, "routes");
    }

    #[test]
    fn routes_courses_and_the_spravato_indication_are_checked() {
        let e = evaluation(vec![finding("ELIG-029", FindingSeverity::PhysicianReview, Scope::Esketamine)]);
        assert_eq!(check(&e, &ctx(), &eligible(vec![], vec![])).unwrap_err().field, "routes");
        let wrong = RouteChoice { route: Route::SublingualLozenge, course_template: Some("IV-6".into()) };
        assert_eq!(check(&e, &ctx(), &eligible(vec![wrong], vec![])).unwrap_err().field, "routes[0].course_template");
        assert_eq!(check(&e, &ctx(), &eligible(vec![sl(), sl()], vec![])).unwrap_err().field, "routes[1].route");
        assert_eq!(check(&e, &ctx(), &eligible(vec![spravato()], vec![])).unwrap_err().field, "spravato_indication");
        // ELIG-029 (not TRD) needs a disposition only under the TRD indication.
        let mut req = eligible(vec![spravato()], vec![]);
        req.spravato_indication = Some(SpravatoIndication::Trd);
        assert_eq!(check(&e, &ctx(), &req).unwrap_err().field, "dispositions");
        req.spravato_indication = Some(SpravatoIndication::MddWithAcuteSuicidalIdeation);
        assert!(check(&e, &ctx(), &req).is_ok());
        let mut no_spravato = eligible(vec![sl()], vec![]);
        no_spravato.spravato_indication = Some(SpravatoIndication::Trd);
        assert_eq!(check(&e, &ctx(), &no_spravato).unwrap_err().field, "spravato_indication");
        // Spravato needs an MDD diagnosis; the suicidal-ideation indication an oral antidepressant.
        let mut no_mdd = eligible(vec![spravato()], vec![]);
        no_mdd.spravato_indication = Some(SpravatoIndication::MddWithAcuteSuicidalIdeation);
        let bare = DecisionContext::default();
        assert_eq!(check(&e, &bare, &no_mdd).unwrap_err().field, "spravato_indication");
        let mdd_only = DecisionContext { mdd_diagnosed: true, on_antidepressant: false };
        assert!(check(&e, &mdd_only, &no_mdd).unwrap_err().message.contains("oral antidepressant"));
        let nasal = RouteChoice { route: Route::IntranasalRacemic, course_template: None };
        assert!(check(&e, &ctx(), &eligible(vec![nasal], vec![])).is_ok());
    }

    #[test]
    fn the_summary_is_required() {
        let e = evaluation(vec![]);
        let mut req = eligible(vec![sl()], vec![]);
        req.summary = " ".into();
        assert_eq!(check(&e, &ctx(), &req).unwrap_err().field, "summary");
    }
}
