//! Clinical content shipped as data (`content/`): read once, immutable, each item with its version
//! and source so every stored result can name the definition it used.

use std::sync::OnceLock;

use kapstone_domain::instruments::Instrument;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct InstrumentOption {
    pub value: serde_json::Value,
    pub label: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct InstrumentItem {
    pub number: String,
    pub text: String,
    #[serde(default)]
    pub loinc: Option<String>,
    #[serde(default)]
    pub asked_when: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct InstrumentDefinition {
    pub id: String,
    pub version: String,
    pub title: String,
    pub source: String,
    pub notice: String,
    pub stem: String,
    pub options: Vec<InstrumentOption>,
    pub items: Vec<InstrumentItem>,
}

const FILES: [(Instrument, &str); 4] = [
    (Instrument::Phq9, include_str!("../../../content/instruments/phq9.json")),
    (Instrument::Gad7, include_str!("../../../content/instruments/gad7.json")),
    (Instrument::Pcl5, include_str!("../../../content/instruments/pcl5.json")),
    (Instrument::CssrsScreener, include_str!("../../../content/instruments/cssrs_screener.json")),
];

fn all() -> &'static [(Instrument, Result<InstrumentDefinition, String>)] {
    static DEFS: OnceLock<Vec<(Instrument, Result<InstrumentDefinition, String>)>> = OnceLock::new();
    DEFS.get_or_init(|| {
        FILES.iter().map(|(i, text)| (*i, serde_json::from_str(text).map_err(|e| format!("{i}: {e}")))).collect()
    })
}

/// The shipped definition of `instrument`.
pub fn instrument(instrument: Instrument) -> anyhow::Result<&'static InstrumentDefinition> {
    match all().iter().find(|(i, _)| *i == instrument) {
        Some((_, Ok(def))) => Ok(def),
        Some((_, Err(e))) => Err(anyhow::anyhow!("instrument content is invalid: {e}")),
        None => Err(anyhow::anyhow!("no content for {instrument}")),
    }
}

/// A consent document as shipped in `content/consents/`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ConsentDocument {
    pub id: String,
    pub version: String,
    pub title: String,
    pub source: String,
    pub paragraphs: Vec<String>,
}

impl ConsentDocument {
    /// SHA-256 of the exact text a signer reads.
    pub fn sha256(&self) -> String {
        kapstone_domain::consent::document_hash(&self.title, &self.paragraphs)
    }
}

const CONSENTS: [&str; 2] = [
    include_str!("../../../content/consents/kap-general.json"),
    include_str!("../../../content/consents/spravato-rems.json"),
];

fn consents() -> &'static [Result<ConsentDocument, String>] {
    static DOCS: OnceLock<Vec<Result<ConsentDocument, String>>> = OnceLock::new();
    DOCS.get_or_init(|| CONSENTS.iter().map(|t| serde_json::from_str(t).map_err(|e| e.to_string())).collect())
}

/// Every consent document, in display order.
pub fn consent_documents() -> anyhow::Result<Vec<&'static ConsentDocument>> {
    consents().iter().map(|d| d.as_ref().map_err(|e| anyhow::anyhow!("consent content is invalid: {e}"))).collect()
}

/// The consent document `id`, if shipped.
pub fn consent(id: &str) -> Option<&'static ConsentDocument> {
    consents().iter().filter_map(|d| d.as_ref().ok()).find(|d| d.id == id)
}

/// The shipped eligibility rule set, checked against the engine's code.
pub fn eligibility_rules() -> anyhow::Result<&'static kapstone_domain::eligibility::RuleSet> {
    static RULES: OnceLock<Result<kapstone_domain::eligibility::RuleSet, String>> = OnceLock::new();
    RULES
        .get_or_init(|| {
            let set: kapstone_domain::eligibility::RuleSet =
                serde_json::from_str(include_str!("../../../content/eligibility/rules.json"))
                    .map_err(|e| e.to_string())?;
            set.check().map_err(|e| e.to_string())?;
            Ok(set)
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("eligibility rules are invalid: {e}"))
}

/// The shipped ICD-10-CM code table (versioned by fiscal year).
pub fn diagnosis_table() -> anyhow::Result<&'static kapstone_domain::consultation::DiagnosisTable> {
    static TABLE: OnceLock<Result<kapstone_domain::consultation::DiagnosisTable, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            serde_json::from_str(include_str!("../../../content/codes/icd10cm.json")).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("ICD-10-CM table is invalid: {e}"))
}

/// The shipped SPRAVATO REMS Patient Monitoring Form definition, checked against the code that
/// fills it.
pub fn rems_form() -> anyhow::Result<&'static kapstone_domain::rems_form::FormDefinition> {
    static FORM: OnceLock<Result<kapstone_domain::rems_form::FormDefinition, String>> = OnceLock::new();
    FORM.get_or_init(|| {
        let def: kapstone_domain::rems_form::FormDefinition =
            serde_json::from_str(include_str!("../../../content/rems/patient-monitoring-form.json"))
                .map_err(|e| e.to_string())?;
        def.check().map_err(|e| e.to_string())?;
        Ok(def)
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("REMS form definition is invalid: {e}"))
}

/// The journal prompts, the sharing notice and the crisis text shown on every journal page.
pub fn journal_prompts() -> anyhow::Result<&'static kapstone_domain::journal::PromptSet> {
    static SET: OnceLock<Result<kapstone_domain::journal::PromptSet, String>> = OnceLock::new();
    SET.get_or_init(|| {
        kapstone_domain::journal::PromptSet::parse(include_str!("../../../content/journal/prompts.json"))
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Loads and checks every piece of content, so a bad file stops start-up instead of failing the
/// first request that needs it.
pub fn check_all() -> anyhow::Result<()> {
    for i in Instrument::ALL {
        instrument(i)?;
    }
    consent_documents()?;
    eligibility_rules()?;
    diagnosis_table()?;
    rems_form()?;
    journal_prompts()?;
    kapstone_domain::protocol::ProtocolSet::bundled().map_err(|e| anyhow::anyhow!("protocol content: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instrument_definition_parses_and_matches_the_scoring() {
        for i in Instrument::ALL {
            let def = instrument(i).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(def.id, i.as_str());
            assert_eq!(def.items.len(), i.item_count(), "{i}");
            assert!(def.source.contains("KAP-SPEC"), "{i} names its source");
            assert!(!def.version.is_empty());
        }
    }

    #[test]
    fn all_content_loads() {
        check_all().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(eligibility_rules().map(|r| r.rules.len()).unwrap_or(0), 41);
        let table = diagnosis_table().unwrap_or_else(|e| panic!("{e}"));
        assert!(table.find("f33.2").is_some() && table.find("F32.A").is_some() && table.find("F99").is_none());
    }

    #[test]
    fn consent_documents_parse_and_name_their_sources() {
        let docs = consent_documents().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 2);
        for d in docs {
            assert!(d.source.contains("KAP-SPEC"), "{}", d.id);
            assert!(d.paragraphs.len() >= 3);
            assert_eq!(d.sha256().len(), 64);
        }
        let general = consent("kap-general").map(|d| d.paragraphs.join(" ")).unwrap_or_default();
        for must in ["off-label", "not drive", "blood pressure", "Bladder", "Pregnancy", "Misuse", "withdraw"] {
            assert!(general.to_lowercase().contains(&must.to_lowercase()), "the general consent covers {must}");
        }
    }
}
