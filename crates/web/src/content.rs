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
}
