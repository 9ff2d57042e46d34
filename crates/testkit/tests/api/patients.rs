use kapstone_domain::Role;
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use kapstone_web::app::accounts::{NewAccountInput, Operator, create_account};
use kapstone_web::app::demo::create_clinic;
use serde_json::Value;

both_backends! {
    async fn a_patient_sees_only_their_own_record(b) {
        let app = TestApp::demo(b).await?;
        let p1 = app.token("patient1@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&p1, "/api/v1/portal/me").await?.json().await?;
        assert_eq!(me["mrn"], "K000001");
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let list: Value = app.get_bearer(&nurse, "/api/v1/patients?limit=20").await?.json().await?;
        let other = list["items"].as_array().unwrap().iter().find(|p| p["mrn"] == "K000002").unwrap();
        let resp = app.get_bearer(&p1, &format!("/api/v1/patients/{}", other["id"].as_str().unwrap())).await?;
        assert_eq!(resp.status(), 403);
        assert!(!resp.text().await?.contains("K000002"));
        app.stop().await
    }

    async fn the_portal_shows_who_viewed_my_record(b) {
        let app = TestApp::demo(b).await?;
        let (c, _) = app.browser_login("patient2@demo.kapstone.test", PASSWORD).await?;
        let before = c.get(app.url("/portal")).send().await?.text().await?;
        assert!(before.contains("No one from the clinic has opened your record yet"));
        assert!(before.contains("988"), "crisis resources are shown");
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&app.token("patient2@demo.kapstone.test").await?, "/api/v1/portal/me").await?.json().await?;
        app.get_bearer(&nurse, &format!("/api/v1/patients/{}", me["id"].as_str().unwrap())).await?;
        let after = c.get(app.url("/portal")).send().await?.text().await?;
        assert!(after.contains("Nurse opened your record"), "{after}");
        // Staff pages are not reachable from the portal.
        assert_eq!(c.get(app.url("/patients")).send().await?.status(), 403);
        assert_eq!(c.get(app.url("/")).send().await?.status(), 303);
        app.stop().await
    }

    async fn staff_of_another_clinic_cannot_read_a_patient(b) {
        let app = TestApp::demo(b).await?;
        let other = create_clinic(&app.db, "Another clinic", "America/Chicago").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let input = NewAccountInput {
            email: "nurse@other.test".into(),
            name: "Other Nurse".into(),
            role: Role::Nurse.as_str().into(),
            password: PASSWORD.into(),
            patient_mrn: None,
        };
        create_account(&app.state, Operator::CommandLine { clinic: other }, input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let ours = app.token("nurse@demo.kapstone.test").await?;
        let list: Value = app.get_bearer(&ours, "/api/v1/patients").await?.json().await?;
        let id = list["items"][0]["id"].as_str().unwrap().to_owned();
        let theirs = app.token("nurse@other.test").await?;
        let resp = app.get_bearer(&theirs, &format!("/api/v1/patients/{id}")).await?;
        assert_eq!(resp.status(), 404);
        let theirs_list: Value = app.get_bearer(&theirs, "/api/v1/patients").await?.json().await?;
        assert_eq!(theirs_list["items"].as_array().unwrap().len(), 0);
        app.stop().await
    }

    async fn the_patient_list_and_chart_render_for_staff(b) {
        let app = TestApp::demo(b).await?;
        let (c, _) = app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
        let list = c.get(app.url("/patients")).send().await?.text().await?;
        assert!(list.contains("12 patients"));
        let href = list.split("href=\"/patients/").nth(1).and_then(|s| s.split('"').next()).unwrap();
        let chart = c.get(app.url(&format!("/patients/{href}"))).send().await?;
        assert_eq!(chart.status(), 200);
        assert!(chart.text().await?.contains("What is due next"));
        assert_eq!(c.get(app.url("/patients/not-an-id")).send().await?.status(), 404);
        let bad = app.get_bearer(&app.token("nurse@demo.kapstone.test").await?, "/api/v1/patients?limit=lots").await?;
        assert_eq!(bad.status(), 422);
        let body: Value = bad.json().await?;
        assert_eq!(body["error"]["field"], "limit");
        app.stop().await
    }
}
