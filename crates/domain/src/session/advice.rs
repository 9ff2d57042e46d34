//! Advice that does not stop a session but that the clinician should see: the Spravato food,
//! fluid and nasal-spray timing before the first device (KAP-SPEC 4.2 pre-dose patient rules
//! [S11], DDI-011; TV-SPR-5).
//! The label *advises* (nausea and vomiting are common), so these are warnings, not gates.

use serde::Serialize;

use super::Context;
use super::state::Session;
use crate::UtcTs;
use crate::decision::Route;

/// Minutes without food before Spravato (label advice [S11]).
pub const SPRAVATO_NO_FOOD_MINUTES: i64 = 120;
/// Minutes without liquids before Spravato (label advice [S11]).
pub const SPRAVATO_NO_LIQUIDS_MINUTES: i64 = 30;
/// Minutes between a nasal corticosteroid or decongestant and Spravato (DDI-011 [S11]).
pub const SPRAVATO_NASAL_SPRAY_MINUTES: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Advisory {
    /// `TV-SPR-5` style code: `spravato_food`, `spravato_liquids`, `spravato_nasal_spray`.
    pub code: &'static str,
    pub message: String,
}

/// The advisories for the session: the time since the last food and fluid recorded at check-in,
/// against the first device (or, before dosing, now).
pub fn advisories(session: &Session, ctx: &Context) -> Vec<Advisory> {
    let mut out = Vec::new();
    if ctx.protocol.route != Route::SpravatoIntranasal {
        return out;
    }
    let Some(check_in) = session.check_in() else { return out };
    let dose_at: UtcTs = session.devices().first().copied().unwrap_or(ctx.now);
    let minutes_before = |t: UtcTs| (dose_at.unix_micros() - t.unix_micros()).div_euclid(60_000_000);
    if let Some(food) = check_in.details.state_of_mind.last_food_at {
        let m = minutes_before(food);
        if m < SPRAVATO_NO_FOOD_MINUTES {
            out.push(Advisory {
                code: "spravato_food",
                message: format!(
                    "Ate {m} min before the first device: the label advises no food for 2 hours before (nausea, \
                     vomiting) [S11]."
                ),
            });
        }
    }
    if let Some(fluid) = check_in.details.state_of_mind.last_fluid_at {
        let m = minutes_before(fluid);
        if m < SPRAVATO_NO_LIQUIDS_MINUTES {
            out.push(Advisory {
                code: "spravato_liquids",
                message: format!(
                    "Drank {m} min before the first device: the label advises no liquids for 30 minutes before [S11]."
                ),
            });
        }
    }
    if let Some(spray) = check_in.details.state_of_mind.last_nasal_spray_at {
        let m = minutes_before(spray);
        if m < SPRAVATO_NASAL_SPRAY_MINUTES {
            out.push(Advisory {
                code: "spravato_nasal_spray",
                message: format!(
                    "Used a nasal corticosteroid or decongestant {m} min before the first device: give it at \
                     least 1 hour before Spravato (DDI-011) [S11]."
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use crate::ids::UserId;
    use crate::protocol::ProtocolSet;
    use crate::session::{
        Actor, CheckIn, Escort, GateFacts, Mood, Pregnancy, Recorded, SessionEvent, StateOfMind, apply,
    };

    fn at(h: u8, m: u8) -> UtcTs {
        let s = format!("2025-03-07T{h:02}:{m:02}:00Z");
        serde_json::from_value(serde_json::Value::String(s)).unwrap()
    }

    fn gates() -> GateFacts {
        GateFacts {
            consent_valid: true,
            decision_allows_route: true,
            rems_enrolled: true,
            setting_rems_certified: true,
            cssrs_risk: None,
            spravato_indication: None,
            previous_spravato_doses_mg: vec![],
            age_years: Some(40),
            recorded_weight: None,
            height_cm: None,
            sex_at_birth: None,
            clinic_date: jiff::civil::date(2025, 3, 7),
        }
    }

    fn checked_in(route: Route, food: UtcTs, fluid: UtcTs, now: UtcTs) -> Vec<Advisory> {
        with_spray(route, food, fluid, None, now)
    }

    fn with_spray(route: Route, food: UtcTs, fluid: UtcTs, spray: Option<UtcTs>, now: UtcTs) -> Vec<Advisory> {
        let protocol = ProtocolSet::bundled().unwrap().get(route).clone();
        let ctx = Context { protocol: &protocol, gates: gates(), now };
        let event = SessionEvent::CheckedIn(CheckIn {
            escort: Escort { name: "Sam Rivers".into(), phone: "+1 555 010 0199".into(), relationship: None },
            escort_confirmed_in_person: true,
            state_of_mind: StateOfMind {
                mood: Mood::Rating(6),
                acute_stressors: None,
                sleep_hours: None,
                last_food_at: Some(food),
                last_fluid_at: Some(fluid),
                last_nasal_spray_at: spray,
                alcohol_or_substances_last_12h: false,
                intoxication_signs: false,
                medication_changes: None,
            },
            pregnancy: Pregnancy::NotApplicable,
            weight: None,
        });
        let by = Actor { user: UserId::from_uuid(uuid::Uuid::from_u128(7)), role: Role::Nurse };
        let s = apply(Session::scheduled(), &ctx, &Recorded { at: at(9, 30), by, event });
        advisories(&s, &ctx)
    }

    #[test]
    fn tv_spr_5_lunch_an_hour_before_is_a_warning() {
        let a = checked_in(Route::SpravatoIntranasal, at(9, 0), at(9, 0), at(10, 0));
        let codes: Vec<&str> = a.iter().map(|x| x.code).collect();
        assert_eq!(codes, ["spravato_food"], "{a:?}");
        assert!(a[0].message.starts_with("Ate 60 min"));
    }

    #[test]
    fn a_drink_twenty_minutes_before_is_a_warning_and_the_rules_are_spravato_only() {
        let a = checked_in(Route::SpravatoIntranasal, at(7, 0), at(9, 40), at(10, 0));
        assert_eq!(a.iter().map(|x| x.code).collect::<Vec<_>>(), ["spravato_liquids"]);
        assert!(checked_in(Route::SpravatoIntranasal, at(7, 0), at(9, 30), at(10, 0)).is_empty(), "30 min is enough");
        assert!(checked_in(Route::SublingualLozenge, at(9, 50), at(9, 55), at(10, 0)).is_empty());
    }

    #[test]
    fn tv_spr_5_a_nasal_decongestant_30_minutes_before_is_a_warning() {
        let a = with_spray(Route::SpravatoIntranasal, at(7, 0), at(7, 0), Some(at(9, 30)), at(10, 0));
        assert_eq!(a.iter().map(|x| x.code).collect::<Vec<_>>(), ["spravato_nasal_spray"]);
        assert!(a[0].message.contains("30 min"), "{}", a[0].message);
        let hour = with_spray(Route::SpravatoIntranasal, at(7, 0), at(7, 0), Some(at(9, 0)), at(10, 0));
        assert!(hour.is_empty(), "1 hour is enough: {hour:?}");
    }
}
