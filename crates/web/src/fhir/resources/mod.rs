//! Mappers from stored rows to FHIR R4 resources, one module per group of resource types.
//! Codes come from KAP-SPEC section 8 only (LOINC, UCUM, SNOMED CT routes, ICD-10-CM, NDC), and
//! only those the spec marks as seen in a cited artefact; what has no verified code is sent as
//! text. Free text the clinician wrote (history, notes) is never mapped.

pub mod audit_event;
pub mod clinical;
pub mod consent;
pub mod observations;
pub mod people;
pub mod questionnaires;
pub mod schedule;

use kapstone_domain::UtcTs;
use kapstone_store::DbTs;
use serde_json::{Value, json};
use uuid::Uuid;

/// The resource types served at `/fhir/R4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Patient,
    Practitioner,
    Location,
    Appointment,
    Encounter,
    Condition,
    AllergyIntolerance,
    MedicationStatement,
    MedicationAdministration,
    Observation,
    Questionnaire,
    QuestionnaireResponse,
    Consent,
    AuditEvent,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
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
        Kind::AuditEvent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Patient => "Patient",
            Kind::Practitioner => "Practitioner",
            Kind::Location => "Location",
            Kind::Appointment => "Appointment",
            Kind::Encounter => "Encounter",
            Kind::Condition => "Condition",
            Kind::AllergyIntolerance => "AllergyIntolerance",
            Kind::MedicationStatement => "MedicationStatement",
            Kind::MedicationAdministration => "MedicationAdministration",
            Kind::Observation => "Observation",
            Kind::Questionnaire => "Questionnaire",
            Kind::QuestionnaireResponse => "QuestionnaireResponse",
            Kind::Consent => "Consent",
            Kind::AuditEvent => "AuditEvent",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The search parameters each type supports (besides `_count`), as listed in the
    /// CapabilityStatement: (name, FHIR type, what it matches).
    pub fn search_params(self) -> &'static [(&'static str, &'static str, &'static str)] {
        const PATIENT: (&str, &str, &str) = ("patient", "reference", "the patient (an id or Patient/id)");
        match self {
            Kind::Patient => &[
                ("identifier", "token", "the medical record number"),
                ("birthdate", "date", "the exact date of birth (YYYY-MM-DD)"),
            ],
            Kind::Practitioner | Kind::Location | Kind::Questionnaire => &[],
            Kind::Appointment => &[
                PATIENT,
                ("date", "date", "Appointment.start; prefixes eq, ge, gt, le, lt (UTC)"),
                ("status", "token", "Appointment.status"),
            ],
            Kind::Encounter => &[
                PATIENT,
                ("date", "date", "Encounter.period.start; prefixes eq, ge, gt, le, lt (UTC)"),
                ("status", "token", "Encounter.status"),
            ],
            Kind::Condition => &[PATIENT, ("code", "token", "the ICD-10-CM code (system|code or code)")],
            Kind::AllergyIntolerance | Kind::MedicationStatement => &[PATIENT],
            Kind::MedicationAdministration => &[
                PATIENT,
                ("effective-time", "date", "MedicationAdministration.effectiveDateTime (UTC)"),
                ("code", "token", "the product's NDC"),
            ],
            Kind::Observation => &[
                PATIENT,
                (
                    "code",
                    "token",
                    "the LOINC code of Observation.code or of a component (so 8480-6 finds blood pressures)",
                ),
                ("date", "date", "Observation.effectiveDateTime; prefixes eq, ge, gt, le, lt (UTC)"),
                ("category", "token", "vital-signs or survey"),
            ],
            Kind::QuestionnaireResponse => &[
                PATIENT,
                (
                    "questionnaire",
                    "reference",
                    "the questionnaire (phq9, gad7, pcl5, cssrs-screener or its canonical URL)",
                ),
                ("authored", "date", "QuestionnaireResponse.authored (UTC)"),
            ],
            Kind::Consent => &[
                PATIENT,
                ("status", "token", "active or inactive (revoked)"),
                ("date", "date", "Consent.dateTime (UTC)"),
            ],
            Kind::AuditEvent => &[PATIENT, ("date", "date", "AuditEvent.recorded (UTC)")],
        }
    }

    /// The element a `date`-type search parameter compares.
    pub fn date_of(self, r: &Value) -> Option<&str> {
        let v = match self {
            Kind::Appointment => &r["start"],
            Kind::Encounter => &r["period"]["start"],
            Kind::Observation | Kind::MedicationAdministration => &r["effectiveDateTime"],
            Kind::QuestionnaireResponse => &r["authored"],
            Kind::Consent => &r["dateTime"],
            Kind::AuditEvent => &r["recorded"],
            _ => return None,
        };
        v.as_str()
    }

    /// Types in the patient compartment (Patient- and Group-level export).
    pub fn in_patient_compartment(self) -> bool {
        !matches!(self, Kind::Practitioner | Kind::Location | Kind::Questionnaire | Kind::AuditEvent)
    }
}

/// What every mapper needs: the server's FHIR base URL (for canonical URLs).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub base: String,
}

pub fn reference(kind: Kind, id: impl std::fmt::Display) -> Value {
    json!({ "reference": format!("{}/{id}", kind.as_str()) })
}

pub fn patient_ref(id: Uuid) -> Value {
    reference(Kind::Patient, id)
}

pub fn instant(t: DbTs) -> String {
    t.0.rfc3339()
}

pub fn instant_of(t: UtcTs) -> String {
    t.rfc3339()
}

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const SNOMED: &str = "http://snomed.info/sct";
