//! Measurement-based care (KAP-SPEC 7.10): the cadence job assigns due questionnaires to the
//! portal once, whatever the number of passes or processes, recording the settings version it
//! used; staff see due and overdue measures; nobody else does.

use kapstone_testkit::{TestApp, both_backends};
use serde_json::Value;

both_backends! {
    async fn the_cadence_job_assigns_due_measures_once_and_staff_see_them(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let due: Value = app.get_bearer(&nurse, "/api/v1/measures/due").await?.json().await?;
        let items = due["items"].as_array().unwrap().clone();
        eprintln!("due: {due}");
        assert!(!items.is_empty(), "the demo course owes measures: {due}");
        assert!(items.iter().all(|i| i["status"] == "due" || i["status"] == "overdue"), "{due}");
        assert!(items.iter().all(|i| i["in_portal"] == false || i["in_portal"] == true));

        // The clinic sends measures 14 days ahead (a new settings version), and the demo's own
        // portal assignments are cleared, so what the job sends is its own.
        let clinic = kapstone_store::clinics::list(&app.state.db).await?[0].clinic_id();
        let mut settings = kapstone_store::clinics::current_settings(&app.state.db, clinic).await?;
        settings.measurement.notice_days = 14;
        let mut tx = app.state.db.begin().await?;
        let version = kapstone_store::clinics::save_settings(&mut tx, clinic, &settings, None).await?;
        tx.commit().await?;
        app.raw_sql("DELETE FROM questionnaire_assignments WHERE completed_at IS NULL").await?;
        let first = kapstone_web::app::jobs::assign_measures(&app.state).await?;
        assert!(first >= 2, "the PHQ-9 and C-SSRS before the next dosing session: {first}");
        assert_eq!(kapstone_web::app::jobs::assign_measures(&app.state).await?, 0, "a second pass assigns nothing");
        let other = kapstone_web::state::AppState::new(
            kapstone_store::Db::connect(&app.fresh.url).await?,
            kapstone_web::state::ServerConfig::default(),
        );
        assert_eq!(kapstone_web::app::jobs::assign_measures(&other).await?, 0, "nor does another process");
        assert_eq!(app.count("measure_assignments").await?, i64::try_from(first)?);
        // Each names the settings version whose cadence it used.
        assert_eq!(app.count(&format!("measure_assignments WHERE settings_version = {version}")).await?, i64::try_from(first)?);
        assert_eq!(app.count("audit_events WHERE action = 'measure.assign'").await?, i64::try_from(first)?);

        // The clinic dashboard counts what is past due and unanswered, now.
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        async fn overdue(app: &TestApp, prescriber: &str) -> anyhow::Result<i64> {
            let d: Value = app.get_bearer(prescriber, "/api/v1/reports/outcomes").await?.json().await?;
            Ok(d["overdue_measures"].as_i64().unwrap())
        }
        assert_eq!(overdue(&app, &prescriber).await?, 0, "sent ahead of time, none overdue yet");
        app.raw_sql("UPDATE measure_assignments SET due_by = (SELECT MIN(submitted_at) FROM questionnaire_responses)").await?;
        assert_eq!(overdue(&app, &prescriber).await?, i64::try_from(first)?, "every one past due");
        let phq9 = app.count("measure_assignments WHERE instrument = 'phq9'").await?;
        assert!(phq9 >= 1);
        app.raw_sql(
            "UPDATE questionnaire_assignments SET completed_at = assigned_at \
             WHERE id IN (SELECT assignment_id FROM measure_assignments WHERE instrument = 'phq9')",
        )
        .await?;
        assert_eq!(overdue(&app, &prescriber).await?, i64::try_from(first)? - phq9, "an answered one is not overdue");

        // Now in the portal.
        let due: Value = app.get_bearer(&nurse, "/api/v1/measures/due").await?.json().await?;
        assert!(due["items"].as_array().unwrap().iter().any(|i| i["in_portal"] == true), "{due}");
        let (c, _) = app.browser_login("nurse@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let page = c.get(app.url("/measures")).send().await?;
        assert_eq!(page.status(), 200);
        assert!(page.text().await?.contains("in the portal"));

        for email in ["frontdesk@demo.kapstone.test", "admin@demo.kapstone.test", "patient1@demo.kapstone.test"] {
            let t = app.token(email).await?;
            let r = app.get_bearer(&t, "/api/v1/measures/due").await?;
            assert_eq!(r.status(), 403, "{email}");
        }
        Ok(())
    }
}
