//! Calendar feeds: a staff member's secret link parses as iCalendar, shows patients by initials
//! only, and stops working when renewed; a patient downloads only their own appointment.

use std::str::FromStr;

use icalendar::{Calendar, CalendarComponent, Component};
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::Value;

both_backends! {
    async fn the_staff_feed_is_private_parseable_and_revocable(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let feed: Value = app.get_bearer(&nurse, "/api/v1/me/calendar-feed").await?.json().await?;
        let url = feed["url"].as_str().unwrap().to_owned();
        let again: Value = app.get_bearer(&nurse, "/api/v1/me/calendar-feed").await?.json().await?;
        assert_eq!(again["url"], url.as_str(), "the same link until renewed");
        let path = url.split("/calendar/").nth(1).unwrap();
        // No session needed: the link is the credential.
        let resp = app.client().get(app.url(&format!("/calendar/{path}"))).send().await?;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str()?.starts_with("text/calendar"));
        let text = resp.text().await?;
        let cal = Calendar::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let events: Vec<_> = cal.components.iter().filter_map(|c| match c { CalendarComponent::Event(e) => Some(e), _ => None }).collect();
        assert!(!events.is_empty(), "the nurse has demo sessions");
        for e in &events {
            assert!(e.get_uid().is_some_and(|u| u.ends_with("@kapstone")));
            assert!(e.property_value("DTSTART").is_some_and(|d| d.ends_with('Z')) && e.property_value("DTSTAMP").is_some());
            let summary = e.get_summary().unwrap_or_default();
            // "Dosing: Spravato — A. B.": initials only.
            let who = summary.rsplit(" — ").next().unwrap_or_default();
            assert!(who.len() <= 6 && who.ends_with('.'), "{summary}");
        }
        // Patient 3's full family name never appears.
        let p3: Value = app.get_bearer(&app.token("patient3@demo.kapstone.test").await?, "/api/v1/portal/me").await?.json().await?;
        assert!(!text.contains(p3["family_name"].as_str().unwrap()));
        // A wrong token and a renewed link open nothing.
        assert_eq!(app.client().get(app.url(&format!("/calendar/{}.ics", "0".repeat(64)))).send().await?.status(), 404);
        let (c, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let renewed = c.post(app.url("/account/calendar-feed")).form(&[("csrf_token", csrf.as_str())]).send().await?;
        assert_eq!(renewed.status(), 200);
        assert_eq!(app.client().get(app.url(&format!("/calendar/{path}"))).send().await?.status(), 404);
        app.stop().await
    }

    async fn a_patient_downloads_only_their_own_appointment(b) {
        let app = TestApp::demo(b).await?;
        let (p3, _) = app.browser_login("patient3@demo.kapstone.test", PASSWORD).await?;
        let page = p3.get(app.url("/portal")).send().await?.text().await?;
        let link = page.split("href=\"/portal/appointments/").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
        let ics = p3.get(app.url(&format!("/portal/appointments/{link}"))).send().await?;
        assert_eq!(ics.status(), 200);
        let cal = Calendar::from_str(&ics.text().await?).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(cal.components.iter().filter(|c| matches!(c, CalendarComponent::Event(_))).count(), 1);
        let (p1, _) = app.browser_login("patient1@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(p1.get(app.url(&format!("/portal/appointments/{link}"))).send().await?.status(), 404);
        app.stop().await
    }
}
