//! Webhooks (issue 8): the events an endpoint may subscribe to, the signature of a delivery and
//! the retry schedule. Pure: the server builds and sends, this module decides.
//!
//! A delivery carries the header `Kapstone-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256, keyed with the endpoint's secret, of the text `<t>.<body>`. A receiver recomputes
//! it, compares in constant time, and refuses a `t` older than its tolerance (replay).

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What happened. Payloads carry ids and this type, never clinical content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    AppointmentBooked,
    AppointmentChanged,
    AppointmentCancelled,
    QuestionnaireSubmitted,
    SafetyAlertRaised,
    SessionDischarged,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::AppointmentBooked,
        EventType::AppointmentChanged,
        EventType::AppointmentCancelled,
        EventType::QuestionnaireSubmitted,
        EventType::SafetyAlertRaised,
        EventType::SessionDischarged,
    ];

    /// Stored and sent as this text; never renamed.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::AppointmentBooked => "appointment.booked",
            EventType::AppointmentChanged => "appointment.changed",
            EventType::AppointmentCancelled => "appointment.cancelled",
            EventType::QuestionnaireSubmitted => "questionnaire.submitted",
            EventType::SafetyAlertRaised => "safety_alert.raised",
            EventType::SessionDischarged => "session.discharged",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s.trim())
    }
}

written_as_name!(EventType, "WebhookEventType");

/// What became of an appointment, as an `appointment.changed` or `appointment.cancelled` event
/// says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentChange {
    Rescheduled,
    NoShow,
    Completed,
    Cancelled,
}

impl AppointmentChange {
    /// The appointment status the change leaves (`cancelled`, `no_show`, `completed`); `None` for
    /// any other status, which no event reports.
    pub fn from_status(status: &str) -> Option<Self> {
        match status {
            "cancelled" => Some(Self::Cancelled),
            "no_show" => Some(Self::NoShow),
            "completed" => Some(Self::Completed),
            "rescheduled" => Some(Self::Rescheduled),
            _ => None,
        }
    }
}

/// An event as a delivery carries it (`type` and `data`): ids only, by construction, so no
/// clinical content can reach a receiver; it fetches what its token allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "appointment.booked")]
    AppointmentBooked { appointment_id: Uuid, patient_id: Uuid },
    #[serde(rename = "appointment.changed")]
    AppointmentChanged {
        appointment_id: Uuid,
        patient_id: Uuid,
        status: AppointmentChange,
        /// The new appointment, when this one was rescheduled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rescheduled_to: Option<Uuid>,
    },
    #[serde(rename = "appointment.cancelled")]
    AppointmentCancelled { appointment_id: Uuid, patient_id: Uuid, status: AppointmentChange },
    #[serde(rename = "questionnaire.submitted")]
    QuestionnaireSubmitted { questionnaire_response_id: Uuid, patient_id: Uuid },
    #[serde(rename = "safety_alert.raised")]
    SafetyAlertRaised { safety_alert_id: Uuid, questionnaire_response_id: Uuid, patient_id: Uuid },
    #[serde(rename = "session.discharged")]
    SessionDischarged { session_id: Uuid, patient_id: Uuid, appointment_id: Uuid },
}

impl Event {
    pub const fn event_type(&self) -> EventType {
        match self {
            Event::AppointmentBooked { .. } => EventType::AppointmentBooked,
            Event::AppointmentChanged { .. } => EventType::AppointmentChanged,
            Event::AppointmentCancelled { .. } => EventType::AppointmentCancelled,
            Event::QuestionnaireSubmitted { .. } => EventType::QuestionnaireSubmitted,
            Event::SafetyAlertRaised { .. } => EventType::SafetyAlertRaised,
            Event::SessionDischarged { .. } => EventType::SessionDischarged,
        }
    }
}

/// The body of a delivery: `{id, type, data, occurred_at}`. The body is signed as stored, so a
/// redelivery sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Payload {
    /// The event's id: the same in every delivery of it (receivers deduplicate on it).
    pub id: Uuid,
    #[serde(flatten)]
    pub event: Event,
    /// RFC 3339, UTC.
    #[schemars(extend("format" = "date-time"))]
    pub occurred_at: String,
}

/// Attempts before a delivery is marked failed.
pub const MAX_ATTEMPTS: i32 = 6;

/// Seconds to wait after failed attempt number `attempts` (1-based): 30 s, 1, 2, 4, 8 min, then
/// capped at 16 minutes.
pub fn backoff_seconds(attempts: i32) -> i64 {
    30_i64 << (attempts - 1).clamp(0, 5)
}

/// How long a receiver should accept a signature's timestamp (and what our own check uses).
pub const TOLERANCE_SECONDS: i64 = 300;

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The `Kapstone-Signature` header value for `body` sent at `unix` seconds.
pub fn sign(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut msg = format!("{unix}.").into_bytes();
    msg.extend_from_slice(body);
    format!("t={unix},v1={}", hex::encode(hmac_sha256(secret.as_bytes(), &msg)))
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// What a receiver does: parses the header, checks the timestamp against `now`, recomputes the
/// HMAC and compares in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return Err(SignatureError::Malformed) };
    if (now - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, t, body);
    let expected = expected.rsplit_once("v1=").map_or("", |(_, h)| h);
    let (a, b) = (expected.as_bytes(), v1.as_bytes());
    if a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Only `http://` and `https://` URLs with a host; refuses credentials in the URL.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host");
    }
    if host.contains('@') {
        return Err("must not carry a user name or password");
    }
    if url.len() > 500 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not a valid URL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_ids_with_its_type_and_reads_back() {
        let id = Uuid::from_u128(1);
        let appointment = Uuid::from_u128(2);
        let patient = Uuid::from_u128(3);
        let moved_to = Uuid::from_u128(4);
        let p = Payload {
            id,
            event: Event::AppointmentChanged {
                appointment_id: appointment,
                patient_id: patient,
                status: AppointmentChange::Rescheduled,
                rescheduled_to: Some(moved_to),
            },
            occurred_at: "2026-11-27T10:00:00Z".into(),
        };
        let v = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"id": id, "type": "appointment.changed", "occurred_at": "2026-11-27T10:00:00Z",
                "data": {"appointment_id": appointment, "patient_id": patient, "status": "rescheduled",
                         "rescheduled_to": moved_to}})
        );
        assert_eq!(p.event.event_type(), EventType::AppointmentChanged);
        assert_eq!(serde_json::from_value::<Payload>(v).ok(), Some(p));
        // A cancellation says so without a new appointment.
        let c = Event::AppointmentCancelled {
            appointment_id: appointment,
            patient_id: patient,
            status: AppointmentChange::Cancelled,
        };
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(
            v["data"],
            serde_json::json!({"appointment_id": appointment, "patient_id": patient, "status": "cancelled"})
        );
        assert_eq!(AppointmentChange::from_status("no_show"), Some(AppointmentChange::NoShow));
        assert_eq!(AppointmentChange::from_status("booked"), None);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block.
        let mac = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replay() {
        let body = br#"{"id":"x","type":"appointment.booked"}"#;
        let h = sign("whsec_1", 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify("whsec_1", &h, body, 1_700_000_010, TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify("whsec_2", &h, body, 1_700_000_010, TOLERANCE_SECONDS), Err(SignatureError::Mismatch));
        assert_eq!(verify("whsec_1", &h, b"{}", 1_700_000_010, TOLERANCE_SECONDS), Err(SignatureError::Mismatch));
        assert_eq!(verify("whsec_1", &h, body, 1_700_001_000, TOLERANCE_SECONDS), Err(SignatureError::Stale));
        assert_eq!(verify("whsec_1", "v1=ab", body, 0, TOLERANCE_SECONDS), Err(SignatureError::Malformed));
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let waits: Vec<i64> = (1..=MAX_ATTEMPTS + 2).map(backoff_seconds).collect();
        assert_eq!(waits, vec![30, 60, 120, 240, 480, 960, 960, 960]);
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(check_url("https://example.org/hook").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("ftp://example.org").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("https://user:pw@example.org/").is_err());
        assert!(check_url("javascript:alert(1)").is_err());
    }

    #[test]
    fn event_types_round_trip() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        assert_eq!(EventType::parse("patient.read"), None);
    }
}
