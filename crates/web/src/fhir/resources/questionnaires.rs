//! Questionnaire (PHQ-9, GAD-7, PCL-5, C-SSRS screener, from the shipped instrument content),
//! QuestionnaireResponse, and the instrument results as survey Observations: PHQ-9 total
//! (44261-6), GAD-7 total (70274-6) and the C-SSRS risk level (93374-7), the codes KAP-SPEC 8.1
//! marks verified. PCL-5 has no verified code: its total stays in the response only.

use kapstone_domain::instruments::Instrument;
use kapstone_store::fhir::ResponseRow;
use serde_json::{Value, json};

use super::{Ctx, Kind, LOINC, instant, patient_ref, reference};
use crate::content;

/// The FHIR id of an instrument's Questionnaire (`cssrs_screener` has an underscore, which
/// FHIR ids do not allow).
pub fn fhir_id(i: Instrument) -> &'static str {
    match i {
        Instrument::Phq9 => "phq9",
        Instrument::Gad7 => "gad7",
        Instrument::Pcl5 => "pcl5",
        Instrument::CssrsScreener => "cssrs-screener",
    }
}

pub fn instrument_of(fhir_id: &str) -> Option<Instrument> {
    Instrument::ALL.into_iter().find(|i| self::fhir_id(*i) == fhir_id)
}

fn name(i: Instrument) -> &'static str {
    match i {
        Instrument::Phq9 => "PHQ9",
        Instrument::Gad7 => "GAD7",
        Instrument::Pcl5 => "PCL5",
        Instrument::CssrsScreener => "CSSRSScreener",
    }
}

/// The panel codes KAP-SPEC 8.1 verifies (none for PCL-5 or the C-SSRS screener).
fn panel(i: Instrument) -> Option<(&'static str, &'static str)> {
    match i {
        Instrument::Phq9 => Some(("44249-1", "PHQ-9 quick depression assessment panel")),
        Instrument::Gad7 => Some(("69737-5", "GAD-7 panel")),
        Instrument::Pcl5 | Instrument::CssrsScreener => None,
    }
}

pub fn canonical(ctx: &Ctx, i: Instrument) -> String {
    format!("{}/Questionnaire/{}", ctx.base, fhir_id(i))
}

fn answer_system(i: Instrument) -> String {
    format!("urn:kapstone:answers:{}", fhir_id(i))
}

/// The questionnaire as the clinic ships it (items, options, verified item LOINC codes).
pub fn questionnaire(ctx: &Ctx, i: Instrument) -> Option<Value> {
    let def = content::instrument(i).ok()?;
    let boolean = def.options.iter().all(|o| o.value.is_boolean());
    let items: Vec<Value> = def
        .items
        .iter()
        .map(|item| {
            let mut v = json!({ "linkId": item.number, "text": item.text });
            if let Some(code) = &item.loinc {
                v["code"] = json!([{ "system": LOINC, "code": code }]);
            }
            if boolean {
                v["type"] = json!("boolean");
            } else {
                v["type"] = json!("choice");
                v["answerOption"] = def
                    .options
                    .iter()
                    .map(|o| {
                        json!({ "valueCoding": {
                            "system": answer_system(i), "code": o.value.to_string(), "display": o.label,
                        } })
                    })
                    .collect();
            }
            v
        })
        .collect();
    let mut q = json!({
        "resourceType": "Questionnaire",
        "id": fhir_id(i),
        "url": canonical(ctx, i),
        "version": def.version,
        "name": name(i),
        "title": def.title,
        "status": "active",
        "subjectType": ["Patient"],
        "description": def.stem,
        "copyright": def.notice,
        "item": items,
    });
    if let Some((code, display)) = panel(i) {
        q["code"] = json!([{ "system": LOINC, "code": code, "display": display }]);
    }
    Some(q)
}

/// The response with its answers in item order (unanswered items, e.g. the C-SSRS questions
/// its skip logic left out, are not listed).
pub fn response(ctx: &Ctx, r: &ResponseRow) -> Vec<Value> {
    let Some(i) = Instrument::parse(&r.instrument) else { return Vec::new() };
    let Ok(def) = content::instrument(i) else { return Vec::new() };
    let answers: Vec<Value> = serde_json::from_str(&r.answers).unwrap_or_default();
    let items: Vec<Value> = def
        .items
        .iter()
        .zip(answers.iter())
        .filter_map(|(item, a)| {
            let answer = match a {
                Value::Bool(b) => json!({ "valueBoolean": b }),
                Value::Number(n) => {
                    let label = def.options.iter().find(|o| o.value == *a).map(|o| o.label.clone());
                    json!({ "valueCoding": { "system": answer_system(i), "code": n.to_string(), "display": label } })
                }
                _ => return None,
            };
            Some(json!({ "linkId": item.number, "text": item.text, "answer": [answer] }))
        })
        .collect();
    let mut v = json!({
        "resourceType": "QuestionnaireResponse",
        "id": r.id.to_string(),
        "questionnaire": format!("{}|{}", canonical(ctx, i), r.instrument_version),
        "status": "completed",
        "subject": patient_ref(r.patient_id),
        "authored": instant(r.submitted_at),
        "item": items,
    });
    if r.entered_via == "portal" {
        v["source"] = patient_ref(r.patient_id);
    }
    vec![v]
}

/// The scored result as a survey Observation, for the instruments with a verified code.
pub fn result_observations(r: &ResponseRow) -> Vec<Value> {
    let Some(i) = Instrument::parse(&r.instrument) else { return Vec::new() };
    let result: Value = serde_json::from_str(&r.result).unwrap_or(Value::Null);
    let (tag, code, display, value) = match i {
        Instrument::Phq9 | Instrument::Gad7 => {
            let Some(total) = r.total else { return Vec::new() };
            let (code, display) =
                if i == Instrument::Phq9 { ("44261-6", "PHQ-9 total score") } else { ("70274-6", "GAD-7 total score") };
            ("total", code, display, json!({ "valueInteger": total }))
        }
        Instrument::CssrsScreener => {
            let Some(risk) = result["risk"].as_str() else { return Vec::new() };
            // Of the answer codes only Low (LA9194-7) is verified (8.1); the others as text.
            let mut concept = json!({ "text": risk });
            if risk == "low" {
                concept["coding"] = json!([{ "system": LOINC, "code": "LA9194-7", "display": "Low" }]);
            }
            ("risk", "93374-7", "C-SSRS suicide risk level", json!({ "valueCodeableConcept": concept }))
        }
        Instrument::Pcl5 => return Vec::new(),
    };
    let mut o = json!({
        "resourceType": "Observation",
        "id": format!("{}.{tag}", r.id),
        "status": "final",
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey",
        }] }],
        "code": { "coding": [{ "system": LOINC, "code": code, "display": display }], "text": display },
        "subject": patient_ref(r.patient_id),
        "effectiveDateTime": instant(r.submitted_at),
        "derivedFrom": [reference(Kind::QuestionnaireResponse, r.id)],
    });
    if let (Some(obj), Some(v)) = (o.as_object_mut(), value.as_object()) {
        obj.extend(v.clone());
    }
    if let Some(sev) = r.severity.as_deref() {
        o["interpretation"] = json!([{ "text": sev }]);
    }
    vec![o]
}
