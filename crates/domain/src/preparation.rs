//! The preparation checklist of a dosing session (KAP-SPEC 2.1 stage 5, 4.2, 7.10, GATE-02): what
//! must be in place before the day, with a status per item, and the 48 h / 24 h flags for the
//! front desk.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::decision::Route;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Done,
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Item {
    pub key: &'static str,
    pub label: &'static str,
    pub status: ItemStatus,
    /// What is recorded, or what to do.
    pub detail: String,
}

/// What is recorded for one dosing appointment.
#[derive(Debug, Clone, Default)]
pub struct PrepFacts {
    pub escort_name: Option<String>,
    pub escort_phone: Option<String>,
    pub escort_relationship: Option<String>,
    /// The patient confirmed the ride in the portal (it is confirmed again at check-in).
    pub escort_confirmed: bool,
    pub intention_written: bool,
    pub medication_instructions: Option<String>,
    pub instructions_acknowledged: bool,
    /// PHQ-9 and C-SSRS screener answered since the session was booked (KAP-SPEC 7.10).
    pub phq9_done: bool,
    pub cssrs_done: bool,
}

/// The route's pre-dose food and fluid rule, where the spec gives one (Spravato, [S11]). Other
/// routes follow the prescriber's instructions: KAP-SPEC gives no fasting rule for them.
pub fn fasting_rule(route: Route) -> Option<&'static str> {
    match route {
        Route::SpravatoIntranasal => Some("No food for 2 hours and no liquids for 30 minutes before the session."),
        _ => None,
    }
}

/// Nasal corticosteroid or decongestant timing on a Spravato day (DDI-011, [S11]).
pub fn nasal_rule(route: Route) -> Option<&'static str> {
    match route {
        Route::SpravatoIntranasal => {
            Some("If you use a nasal steroid or decongestant, use it at least 1 hour before the session.")
        }
        _ => None,
    }
}

fn status(done: bool) -> ItemStatus {
    if done { ItemStatus::Done } else { ItemStatus::Open }
}

/// The checklist of one dosing session.
pub fn checklist(route: Route, f: &PrepFacts) -> Vec<Item> {
    let ride = match (&f.escort_name, &f.escort_phone) {
        (Some(name), Some(phone)) => {
            let rel = f.escort_relationship.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            let confirmed =
                if f.escort_confirmed { "confirmed by the patient" } else { "not yet confirmed by the patient" };
            format!("{name}{rel}, {phone}: {confirmed}")
        }
        _ => "Name and phone of the adult who drives the patient home (no driving after dosing)".to_owned(),
    };
    let mut items = vec![
        Item {
            key: "ride_home",
            label: "Ride home",
            status: status(f.escort_name.is_some() && f.escort_phone.is_some() && f.escort_confirmed),
            detail: ride,
        },
        Item {
            key: "intention",
            label: "Intention",
            status: status(f.intention_written),
            detail: if f.intention_written {
                "Written by the patient".into()
            } else {
                "The patient writes an intention in the portal".into()
            },
        },
    ];
    let food = fasting_rule(route).unwrap_or("Follow the prescriber's food and fluid instructions for this route.");
    let nasal = nasal_rule(route).map(|n| format!(" {n}")).unwrap_or_default();
    items.push(Item {
        key: "instructions",
        label: "Pre-session instructions",
        status: status(f.instructions_acknowledged),
        detail: format!(
            "{food}{nasal} {}",
            if f.instructions_acknowledged {
                "Read and acknowledged by the patient."
            } else {
                "To be acknowledged by the patient."
            }
        ),
    });
    items.push(Item {
        key: "medication_instructions",
        label: "Medication instructions",
        status: status(f.medication_instructions.is_some()),
        detail: f
            .medication_instructions
            .clone()
            .unwrap_or_else(|| "The prescriber records what to take or hold before the session".into()),
    });
    items.push(Item {
        key: "questionnaires",
        label: "Pre-session questionnaires",
        status: status(f.phq9_done && f.cssrs_done),
        detail: match (f.phq9_done, f.cssrs_done) {
            (true, true) => "PHQ-9 and C-SSRS answered".into(),
            (false, true) => "PHQ-9 waiting in the portal".into(),
            (true, false) => "C-SSRS screener waiting in the portal".into(),
            (false, false) => "PHQ-9 and C-SSRS screener waiting in the portal".into(),
        },
    });
    items
}

/// The front desk's flag: items still open 48 h or 24 h before the session.
pub fn flag(start: Timestamp, now: Timestamp, items: &[Item]) -> Option<&'static str> {
    if !items.iter().any(|i| i.status == ItemStatus::Open) || now >= start {
        return None;
    }
    let left = start.duration_since(now);
    if left <= SignedDuration::from_hours(24) {
        Some("24 h")
    } else if left <= SignedDuration::from_hours(48) {
        Some("48 h")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> PrepFacts {
        PrepFacts {
            escort_name: Some("Robin Example".into()),
            escort_phone: Some("+1 555 0100 0001".into()),
            escort_relationship: Some("partner".into()),
            escort_confirmed: true,
            intention_written: true,
            medication_instructions: Some("Hold lorazepam the evening before.".into()),
            instructions_acknowledged: true,
            phq9_done: true,
            cssrs_done: true,
        }
    }

    #[test]
    fn every_item_has_a_status() {
        let items = checklist(Route::SpravatoIntranasal, &ready());
        assert_eq!(items.len(), 5);
        assert!(items.iter().all(|i| i.status == ItemStatus::Done));
        assert!(items[2].detail.contains("No food for 2 hours"), "Spravato's fasting rule is shown");
        assert!(items[2].detail.contains("at least 1 hour"), "nasal timing on a Spravato day");
        let lozenge = checklist(Route::SublingualLozenge, &ready());
        assert!(lozenge[2].detail.contains("prescriber's food and fluid"), "no invented rule for other routes");
        let mut f = ready();
        f.escort_confirmed = false;
        let items = checklist(Route::SublingualLozenge, &f);
        assert_eq!(items[0].status, ItemStatus::Open, "an unconfirmed ride is open");
        assert!(items[0].detail.contains("not yet confirmed"));
    }

    #[test]
    fn open_items_are_flagged_48_and_24_hours_before() {
        let start: Timestamp = "2026-12-10T17:00:00Z".parse().unwrap();
        let mut f = ready();
        f.intention_written = false;
        let items = checklist(Route::SublingualLozenge, &f);
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(flag(start, at("2026-12-07T17:00:00Z"), &items), None);
        assert_eq!(flag(start, at("2026-12-08T18:00:00Z"), &items), Some("48 h"));
        assert_eq!(flag(start, at("2026-12-09T18:00:00Z"), &items), Some("24 h"));
        assert_eq!(flag(start, at("2026-12-09T18:00:00Z"), &checklist(Route::SublingualLozenge, &ready())), None);
    }
}
