//! Appointment reminders (issue: 48 h and 24 h before, with the preparation steps, and a
//! next-day check-in after a dosing session; CONFIG-DEFAULT). Bodies carry no clinical detail:
//! the date, the time, the clinic and a link to the portal.

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reminder {
    /// The first reminder (48 h before by default).
    Before48h,
    /// The second reminder (24 h before by default).
    Before24h,
    /// The day after a dosing session: how are you doing (in the portal).
    CheckIn,
}

impl Reminder {
    pub fn as_str(self) -> &'static str {
        match self {
            Reminder::Before48h => "48h",
            Reminder::Before24h => "24h",
            Reminder::CheckIn => "checkin",
        }
    }
}

/// When reminders go out: a clinic setting (issue default: 48 h and 24 h before, and a next-day
/// check-in after a dosing session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ReminderSettings {
    /// Hours before the appointment for the first reminder (0: none).
    pub first_hours: u16,
    /// Hours before for the second, later reminder (0: none).
    pub second_hours: u16,
    pub check_in_after_dosing: bool,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self { first_hours: 48, second_hours: 24, check_in_after_dosing: true }
    }
}

impl ReminderSettings {
    pub fn check(&self) -> Result<(), &'static str> {
        if self.first_hours > 336 || self.second_hours > 336 {
            return Err("at most 336 hours (two weeks) before");
        }
        if self.first_hours != 0 && self.second_hours != 0 && self.first_hours <= self.second_hours {
            return Err("the first reminder comes before the second");
        }
        Ok(())
    }
}

/// Which reminders are due now for an appointment starting at `start` (`dosing`: a dosing
/// session). A reminder is due from its moment until the next one (or the appointment; the
/// check-in for a day), so a job that was down for a while still sends it once.
pub fn due(start: Timestamp, dosing: bool, now: Timestamp, s: &ReminderSettings) -> Vec<Reminder> {
    let mut out = Vec::new();
    let until = start.duration_since(now);
    let (first, second) =
        (SignedDuration::from_hours(i64::from(s.first_hours)), SignedDuration::from_hours(i64::from(s.second_hours)));
    if until > SignedDuration::ZERO {
        if s.first_hours > 0 && until <= first && (s.second_hours == 0 || until > second) {
            out.push(Reminder::Before48h);
        }
        if s.second_hours > 0 && until <= second {
            out.push(Reminder::Before24h);
        }
    } else if dosing && s.check_in_after_dosing {
        let since = now.duration_since(start);
        if since >= SignedDuration::from_hours(24) && since < SignedDuration::from_hours(48) {
            out.push(Reminder::CheckIn);
        }
    }
    out
}

/// Subject and body of a reminder: date, time, clinic and the portal link only.
pub fn message(kind: Reminder, clinic: &str, when_local: &str, portal: &str) -> (String, String) {
    match kind {
        Reminder::Before48h | Reminder::Before24h => (
            format!("Your appointment at {clinic} on {when_local}"),
            format!(
                "This is a reminder of your appointment at {clinic} on {when_local}.\n\n\
                 Please check what to do before it, and confirm your arrangements, in your portal: {portal}\n\n\
                 If you need to change the appointment, tell us in the portal or call the clinic."
            ),
        ),
        Reminder::CheckIn => (
            format!("How are you today? — {clinic}"),
            format!(
                "Thank you for your visit to {clinic} on {when_local}. Your care team would like to hear how you are: \
                 please open your portal: {portal}\n\nIf you are in crisis, call or text 988, or call 911."
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn reminders_fall_48_and_24_hours_before_and_the_day_after_dosing() {
        let start = at("2026-12-10T17:00:00Z");
        let s = ReminderSettings::default();
        assert!(due(start, true, at("2026-12-08T16:00:00Z"), &s).is_empty(), "49 h before: nothing yet");
        assert_eq!(due(start, true, at("2026-12-08T18:00:00Z"), &s), vec![Reminder::Before48h]);
        assert_eq!(due(start, true, at("2026-12-09T18:00:00Z"), &s), vec![Reminder::Before24h]);
        assert!(due(start, true, at("2026-12-10T18:00:00Z"), &s).is_empty(), "during and just after: nothing");
        assert_eq!(due(start, true, at("2026-12-11T18:00:00Z"), &s), vec![Reminder::CheckIn]);
        assert!(due(start, false, at("2026-12-11T18:00:00Z"), &s).is_empty(), "check-in follows dosing only");
        assert!(due(start, true, at("2026-12-13T18:00:00Z"), &s).is_empty());
        // A clinic that reminds 72 h and 12 h before, without the check-in.
        let c = ReminderSettings { first_hours: 72, second_hours: 12, check_in_after_dosing: false };
        assert_eq!(due(start, true, at("2026-12-07T18:00:00Z"), &c), vec![Reminder::Before48h]);
        assert!(due(start, true, at("2026-12-07T16:00:00Z"), &c).is_empty());
        assert_eq!(due(start, true, at("2026-12-10T06:00:00Z"), &c), vec![Reminder::Before24h]);
        assert!(due(start, true, at("2026-12-11T18:00:00Z"), &c).is_empty());
        assert!(ReminderSettings { first_hours: 12, second_hours: 24, check_in_after_dosing: true }.check().is_err());
    }

    #[test]
    fn messages_carry_no_clinical_detail() {
        let (subject, body) = message(Reminder::Before24h, "Harbour Light", "Thu 2026-12-10 09:00", "https://x/portal");
        assert!(subject.contains("Harbour Light") && body.contains("https://x/portal"));
        for word in ["ketamine", "Spravato", "dosing", "depression", "mg"] {
            assert!(!body.to_lowercase().contains(&word.to_lowercase()), "{word}");
        }
    }
}
