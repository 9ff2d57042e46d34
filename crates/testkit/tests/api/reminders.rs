//! Reminders: queued once per appointment and kind, whatever the number of passes or processes,
//! to the patient's address, without clinical detail.

use kapstone_store::scheduling as st;
use kapstone_testkit::{TestApp, both_backends};
use serde_json::Value;

both_backends! {
    async fn reminders_are_queued_once_and_say_nothing_clinical(b) {
        let app = TestApp::demo(b).await?;
        let p1: Value = app.get_bearer(&app.token("patient1@demo.kapstone.test").await?, "/api/v1/portal/me").await?.json().await?;
        let patient: kapstone_domain::PatientId = p1["id"].as_str().unwrap().parse()?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let types: Value = app.get_bearer(&nurse, "/api/v1/appointment-types").await?.json().await?;
        let type_of = |code: &str| -> uuid::Uuid {
            types["items"].as_array().unwrap().iter().find(|t| t["code"] == code).unwrap()["id"].as_str().unwrap().parse().unwrap()
        };
        let clinic = kapstone_store::clinics::list(&app.db).await?[0].clinic_id();
        let location = st::locations(&app.db, clinic).await?[0].id;
        let by = kapstone_store::users::find_by_email(&app.db, &kapstone_domain::Email::parse("nurse@demo.kapstone.test")?)
            .await?.unwrap().user_id();
        // One consultation 30 hours ahead (the 24 h reminder is due) and one dosing session that
        // started 30 hours ago (the next-day check-in is due). Written directly: booking rules
        // (working hours, past times) are not what is tested here.
        let now = kapstone_domain::UtcTs::now().unix_micros();
        let hour = 3_600_000_000_i64;
        for (code, start) in [("consultation", now + 30 * hour), ("dosing-sl", now - 30 * hour)] {
            let start = start - start % (300 * 1_000_000);
            let mut tx = app.db.begin().await?;
            let booked = st::book(&mut tx, &st::NewAppointment {
                clinic,
                patient,
                type_id: type_of(code),
                location,
                room: None,
                start: kapstone_domain::UtcTs::from_unix_micros(start),
                end: kapstone_domain::UtcTs::from_unix_micros(start + hour),
                staff: &[],
                claims: &[],
                by,
                rescheduled_from: None,
                course: None,
            }).await?;
            assert!(booked.is_ok());
            tx.commit().await?;
        }
        let before = app.count("outbox WHERE reminder IS NOT NULL").await?;
        let first = kapstone_web::app::jobs::queue_reminders(&app.state).await?;
        assert!(first >= 2, "the 24 h reminder and the check-in: {first}");
        // A second pass, and a pass from another process on the same database, queue nothing.
        assert_eq!(kapstone_web::app::jobs::queue_reminders(&app.state).await?, 0);
        // Another server process: its own connections to the same database.
        let other = kapstone_web::state::AppState::new(
            kapstone_store::Db::connect(&app.fresh.url).await?,
            kapstone_web::state::ServerConfig::default(),
        );
        assert_eq!(kapstone_web::app::jobs::queue_reminders(&other).await?, 0);
        assert_eq!(app.count("outbox WHERE reminder IS NOT NULL").await?, before + i64::try_from(first)?);
        assert_eq!(app.count("outbox WHERE reminder = '24h' AND to_address = 'patient1@demo.kapstone.test'").await?, 1);
        assert_eq!(app.count("outbox WHERE reminder = 'checkin' AND to_address = 'patient1@demo.kapstone.test'").await?, 1);
        for word in ["ketamine", "spravato", "dosing", "lozenge", "mg"] {
            assert_eq!(app.count(&format!("outbox WHERE reminder IS NOT NULL AND lower(body) LIKE '%{word}%'")).await?, 0, "{word}");
        }
        app.stop().await
    }
}
