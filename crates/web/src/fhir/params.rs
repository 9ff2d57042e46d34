//! Search parameters, parsed into types before any query runs: an unknown parameter, a
//! malformed reference, date or count is a 400 OperationOutcome naming the parameter.

use kapstone_domain::UtcTs;
use kapstone_store::fhir::Key;
use serde_json::Value;
use uuid::Uuid;

use super::FhirError;
use super::resources::Kind;

/// Largest `_count` accepted, and the default.
pub const MAX_COUNT: usize = 1000;
pub const DEFAULT_COUNT: usize = 50;

/// `system|code`, `|code`, or `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub system: Option<String>,
    pub code: String,
}

/// Where the next page starts: the part of the type (Observation reads three sources), the row
/// and the position of the resource within that row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub part: usize,
    pub key: Key,
    pub sub: usize,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}.{}.{}", self.part, self.key.k1.simple(), self.key.k2, self.sub)
    }

    fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.');
        let part = it.next()?.parse().ok()?;
        let k1 = Uuid::try_parse(it.next()?).ok()?;
        let k2 = it.next()?.parse().ok()?;
        let sub = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Self { part, key: Key { k1, k2 }, sub })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Search {
    pub count: usize,
    pub cursor: Option<Cursor>,
    pub patient: Option<Uuid>,
    pub codes: Vec<Token>,
    pub statuses: Vec<String>,
    pub categories: Vec<Token>,
    pub from: Option<UtcTs>,
    pub to: Option<UtcTs>,
    pub identifier: Option<String>,
    pub birthdate: Option<time::Date>,
    pub questionnaire: Option<kapstone_domain::instruments::Instrument>,
    /// The parameters as given, without `_cursor`, for the links.
    pub pairs: Vec<(String, String)>,
}

fn bad(param: &str, message: impl Into<String>) -> FhirError {
    FhirError::invalid(Some(param), message)
}

pub fn tokens(param: &str, value: &str) -> Result<Vec<Token>, FhirError> {
    value
        .split(',')
        .map(|t| {
            let (system, code) = match t.split_once('|') {
                Some(("", c)) => (None, c),
                Some((s, c)) => (Some(s.to_owned()), c),
                None => (None, t),
            };
            if code.is_empty() || code.len() > 64 {
                return Err(bad(param, format!("`{param}` needs a code (system|code or code)")));
            }
            Ok(Token { system, code: code.to_owned() })
        })
        .collect()
}

/// A patient reference: `{id}` or `Patient/{id}`.
pub fn patient_reference(param: &str, value: &str) -> Result<Uuid, FhirError> {
    let id = value.strip_prefix("Patient/").unwrap_or(value);
    Uuid::try_parse(id).map_err(|_| bad(param, format!("`{param}` must be a Patient id (Patient/{{id}})")))
}

fn day_start(d: jiff::civil::Date) -> Option<UtcTs> {
    let ts = d.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(UtcTs::from_unix_micros(ts.as_microsecond()))
}

/// A `date`-type value with its prefix, as a half-open UTC range `[from, to)`.
pub fn date_range(param: &str, value: &str) -> Result<(Option<UtcTs>, Option<UtcTs>), FhirError> {
    let (prefix, rest) = match value.get(..2) {
        Some(p) if p.chars().all(|c| c.is_ascii_lowercase()) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let malformed = || bad(param, format!("`{param}` must be a date (YYYY-MM-DD) or an instant, with eq/ge/gt/le/lt"));
    // The value as [start, end): a whole day, or one microsecond at an instant.
    let (start, end) = if rest.len() == 10 {
        let d: jiff::civil::Date = rest.parse().map_err(|_| malformed())?;
        let next = d.tomorrow().map_err(|_| malformed())?;
        (day_start(d).ok_or_else(malformed)?, day_start(next).ok_or_else(malformed)?)
    } else {
        let t = UtcTs::parse_rfc3339(rest).ok_or_else(malformed)?;
        (t, UtcTs::from_unix_micros(t.unix_micros().saturating_add(1)))
    };
    Ok(match prefix {
        "eq" => (Some(start), Some(end)),
        "ge" => (Some(start), None),
        "gt" => (Some(end), None),
        "le" => (None, Some(end)),
        "lt" => (None, Some(start)),
        _ => return Err(bad(param, format!("`{param}`: prefix `{prefix}` is not supported (eq, ge, gt, le, lt)"))),
    })
}

impl Search {
    pub fn parse(kind: Kind, raw: Option<&str>) -> Result<Self, FhirError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| FhirError::invalid(None, "the query string is malformed"))?;
        let mut s = Search { count: DEFAULT_COUNT, ..Default::default() };
        let supported = kind.search_params();
        for (name, value) in &pairs {
            let param = name.as_str();
            // No parameter's value holds a control character; a NUL would otherwise reach a
            // query as text (PostgreSQL refuses it: a 500).
            if value.chars().any(char::is_control) {
                return Err(bad(param, format!("`{param}` must not contain control characters")));
            }
            match param {
                "_count" => {
                    s.count = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_COUNT).contains(n))
                        .ok_or_else(|| bad(param, format!("`_count` must be 1 to {MAX_COUNT}")))?;
                }
                "_cursor" => {
                    s.cursor = Some(Cursor::parse(value).ok_or_else(|| bad(param, "`_cursor` is not one of ours"))?);
                    continue;
                }
                "_format" => {
                    if !matches!(value.as_str(), "json" | "application/json" | "application/fhir+json") {
                        return Err(FhirError::not_supported(Some(param), "only JSON is served"));
                    }
                }
                _ => {
                    let Some((_, ty, _)) = supported.iter().find(|(n, _, _)| *n == param) else {
                        return Err(FhirError::not_supported(
                            Some(param),
                            format!("unsupported search parameter `{param}` for {}", kind.as_str()),
                        ));
                    };
                    match (param, *ty) {
                        ("patient", _) => s.patient = Some(patient_reference(param, value)?),
                        ("identifier", _) => {
                            let t = tokens(param, value)?;
                            s.identifier = t.into_iter().next().map(|t| t.code);
                        }
                        ("birthdate", _) => {
                            let d: jiff::civil::Date = value
                                .strip_prefix("eq")
                                .unwrap_or(value)
                                .parse()
                                .map_err(|_| bad(param, "`birthdate` must be a date (YYYY-MM-DD)"))?;
                            s.birthdate = Some(
                                time::Date::from_calendar_date(
                                    i32::from(d.year()),
                                    time::Month::try_from(u8::try_from(d.month()).unwrap_or(1))
                                        .map_err(|_| bad(param, "bad month"))?,
                                    u8::try_from(d.day()).unwrap_or(1),
                                )
                                .map_err(|_| bad(param, "`birthdate` must be a date (YYYY-MM-DD)"))?,
                            );
                        }
                        ("questionnaire", _) => {
                            let id = value.split('|').next().unwrap_or(value);
                            let id = id.rsplit('/').next().unwrap_or(id);
                            s.questionnaire = Some(
                                super::resources::questionnaires::instrument_of(id)
                                    .ok_or_else(|| bad(param, "unknown questionnaire"))?,
                            );
                        }
                        ("code", _) => s.codes.extend(tokens(param, value)?),
                        ("category", _) => s.categories.extend(tokens(param, value)?),
                        ("status", _) => s.statuses.extend(tokens(param, value)?.into_iter().map(|t| t.code)),
                        (_, "date") => {
                            let (from, to) = date_range(param, value)?;
                            s.from = match (s.from, from) {
                                (Some(a), Some(b)) => Some(a.max(b)),
                                (a, b) => a.or(b),
                            };
                            s.to = match (s.to, to) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                        }
                        _ => return Err(FhirError::not_supported(Some(param), "unsupported search parameter")),
                    }
                }
            }
            s.pairs.push((name.clone(), value.clone()));
        }
        Ok(s)
    }

    /// Whether a mapped resource satisfies the parameters that are checked on the resource
    /// itself (codes, status, category, dates; the patient is already in the SQL).
    pub fn matches(&self, kind: Kind, r: &Value) -> bool {
        if !self.codes.is_empty() && !self.codes.iter().any(|t| has_code(r, t)) {
            return false;
        }
        if !self.statuses.is_empty() && !self.statuses.iter().any(|s| r["status"].as_str() == Some(s.as_str())) {
            return false;
        }
        if !self.categories.is_empty() {
            let cats = r["category"].as_array().cloned().unwrap_or_default();
            if !self.categories.iter().any(|t| cats.iter().any(|c| concept_has(c, t))) {
                return false;
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let Some(at) = kind.date_of(r).and_then(UtcTs::parse_rfc3339) else { return false };
            if self.from.is_some_and(|f| at < f) || self.to.is_some_and(|t| at >= t) {
                return false;
            }
        }
        if let Some(q) = self.questionnaire {
            let id = super::resources::questionnaires::fhir_id(q);
            let canonical = r["questionnaire"].as_str().unwrap_or_default();
            let url = canonical.split('|').next().unwrap_or_default();
            if !url.ends_with(&format!("/Questionnaire/{id}")) {
                return false;
            }
        }
        true
    }
}

fn concept_has(concept: &Value, t: &Token) -> bool {
    concept["coding"].as_array().is_some_and(|codings| {
        codings.iter().any(|c| {
            c["code"].as_str() == Some(t.code.as_str())
                && t.system.as_deref().is_none_or(|s| c["system"].as_str() == Some(s))
        })
    })
}

/// `code` matches Observation.code and its components' codes, Condition.code, and a
/// MedicationAdministration's contained product code.
fn has_code(r: &Value, t: &Token) -> bool {
    concept_has(&r["code"], t)
        || r["component"].as_array().is_some_and(|cs| cs.iter().any(|c| concept_has(&c["code"], t)))
        || r["contained"].as_array().is_some_and(|cs| cs.iter().any(|c| concept_has(&c["code"], t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_half_open_ranges() {
        let day = |s: &str| date_range("date", s).map(|(a, b)| (a.map(|t| t.rfc3339()), b.map(|t| t.rfc3339())));
        let (from, to) = day("2026-01-02").unwrap_or_default();
        assert_eq!(from.as_deref(), Some("2026-01-02T00:00:00.000000Z"));
        assert_eq!(to.as_deref(), Some("2026-01-03T00:00:00.000000Z"));
        assert_eq!(day("ge2026-01-02").unwrap_or_default().1, None);
        assert_eq!(day("lt2026-01-02").unwrap_or_default().1.as_deref(), Some("2026-01-02T00:00:00.000000Z"));
        assert!(day("2026-13-02").is_err());
        assert!(day("sa2026-01-02").is_err());
        assert!(day("yesterday").is_err());
    }

    #[test]
    fn unknown_parameters_and_bad_values_are_refused() {
        assert!(Search::parse(Kind::Observation, Some("patient=nope")).is_err());
        assert!(Search::parse(Kind::Observation, Some("name=x")).is_err());
        assert!(Search::parse(Kind::Observation, Some("_count=0")).is_err());
        assert!(Search::parse(Kind::Patient, Some("code=1")).is_err());
        let s = Search::parse(Kind::Observation, Some("code=http://loinc.org|8480-6,8867-4&_count=5"));
        let s = s.unwrap_or_default();
        assert_eq!(s.codes.len(), 2);
        assert_eq!(s.codes[0].system.as_deref(), Some("http://loinc.org"));
        assert_eq!(s.count, 5);
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { part: 1, key: Key { k1: Uuid::nil(), k2: 7 }, sub: 2 };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::parse("1.2.3"), None);
    }
}
