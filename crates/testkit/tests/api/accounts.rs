use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

async fn create(app: &TestApp, token: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let resp = app.client().post(app.url("/api/v1/users")).bearer_auth(token).json(&body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn an_admin_creates_an_account_that_can_sign_in(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let (s, body) = create(&app, &admin, json!({
            "email": "New.Nurse@Clinic.Test", "name": "Pat Newnurse", "role": "nurse", "password": "a long enough secret"
        })).await?;
        assert_eq!(s, 201, "{body}");
        let resp = app.api_login("new.nurse@clinic.test", "a long enough secret").await?;
        assert_eq!(resp.status(), 200);
        assert_eq!(app.count("audit_events WHERE action = 'user.create' AND actor_role = 'admin'").await?, 1);
        app.stop().await
    }

    async fn invalid_accounts_are_refused_with_the_field_and_nothing_is_written(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let users_before = app.count("users").await?;
        let audit_before = app.count("audit_events").await?;
        let cases = [
            (json!({"email": "no-at", "name": "A", "role": "nurse", "password": "a long enough secret"}), 422, "email"),
            (json!({"email": "a@b.co", "name": "A", "role": "surgeon", "password": "a long enough secret"}), 422, "role"),
            (json!({"email": "a@b.co", "name": "A", "role": "nurse", "password": "short"}), 422, "password"),
            (json!({"email": "a@b.co", "name": "A", "role": "nurse", "password": "password1234"}), 422, "password"),
            (json!({"email": "a@b.co", "name": "  ", "role": "nurse", "password": "a long enough secret"}), 422, "name"),
            (json!({"email": "a@b.co", "name": "A", "role": "patient", "password": "a long enough secret"}), 422, "patient_mrn"),
            (json!({"email": "a@b.co", "name": "A", "role": "patient", "password": "a long enough secret", "patient_mrn": "K999999"}), 422, "patient_mrn"),
            (json!({"email": "a@b.co", "name": "A", "role": "nurse", "password": "a long enough secret", "is_admin": true}), 400, "is_admin"),
            (json!({"email": "nurse@demo.kapstone.test", "name": "A", "role": "nurse", "password": "a long enough secret"}), 409, "email"),
            (json!({"email": "a@b.co", "name": "A", "role": "patient", "password": "a long enough secret", "patient_mrn": "K000001"}), 409, "patient_mrn"),
        ];
        for (body, status, field) in cases {
            let (s, resp) = create(&app, &admin, body.clone()).await?;
            assert_eq!(s, status, "{body} -> {resp}");
            assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
        }
        assert_eq!(app.count("users").await?, users_before);
        assert_eq!(app.count("audit_events").await?, audit_before);
        app.stop().await
    }

    async fn a_nurse_cannot_manage_accounts(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let (s, _) = create(&app, &nurse, json!({"email": "x@y.co", "name": "X", "role": "admin", "password": "a long enough secret"})).await?;
        assert_eq!(s, 403);
        assert_eq!(app.count("users WHERE email = 'x@y.co'").await?, 0);
        assert_eq!(app.count("audit_events WHERE action = 'access.denied'").await?, 1);
        app.stop().await
    }

    async fn deactivating_an_account_ends_its_sessions_at_once(b) {
        let app = TestApp::demo(b).await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&therapist, "/api/v1/auth/me").await?.status(), 200);
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let me: Value = app.get_bearer(&therapist, "/api/v1/auth/me").await?.json().await?;
        let id = me["id"].as_str().unwrap();
        let csrf = app.csrf_of(&admin).await?;
        let resp = admin
            .post(app.url(&format!("/admin/users/{id}")))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Alex Therapist, LMFT"), ("role", "therapist"), ("active", "false")])
            .send()
            .await?;
        assert_eq!(resp.status(), 303);
        assert_eq!(app.get_bearer(&therapist, "/api/v1/auth/me").await?.status(), 401);
        assert_eq!(app.api_login("therapist@demo.kapstone.test", PASSWORD).await?.status(), 401);
        assert_eq!(app.count("audit_events WHERE action = 'user.deactivate'").await?, 1);
        app.stop().await
    }

    async fn an_admin_cannot_lock_themselves_out(b) {
        let app = TestApp::demo(b).await?;
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let token = app.token("admin@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&token, "/api/v1/auth/me").await?.json().await?;
        let id = me["id"].as_str().unwrap();
        let csrf = app.csrf_of(&admin).await?;
        let resp = admin
            .post(app.url(&format!("/admin/users/{id}")))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Morgan Admin"), ("role", "admin"), ("active", "false")])
            .send()
            .await?;
        assert_eq!(resp.status(), 422);
        assert!(resp.text().await?.contains("cannot remove your own admin role"));
        app.stop().await
    }

    async fn changing_the_password_signs_out_other_sessions(b) {
        let app = TestApp::demo(b).await?;
        let other = app.token("frontdesk@demo.kapstone.test").await?;
        let (c, _) = app.browser_login("frontdesk@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let weak = c
            .post(app.url("/account/password"))
            .form(&[("csrf_token", csrf.as_str()), ("current_password", PASSWORD), ("new_password", "short")])
            .send()
            .await?;
        assert_eq!(weak.status(), 422);
        assert!(weak.text().await?.contains("new_password-error"), "the error sits next to the new password field");
        let ok = c
            .post(app.url("/account/password"))
            .form(&[("csrf_token", csrf.as_str()), ("current_password", PASSWORD), ("new_password", "a new long passphrase")])
            .send()
            .await?;
        assert_eq!(ok.status(), 200);
        assert_eq!(app.get_bearer(&other, "/api/v1/auth/me").await?.status(), 401);
        assert_eq!(c.get(app.url("/account")).send().await?.status(), 200, "this session stays");
        assert_eq!(app.api_login("frontdesk@demo.kapstone.test", "a new long passphrase").await?.status(), 200);
        app.stop().await
    }
}

both_backends! {
    async fn an_admin_resets_a_forgotten_password_and_lifts_the_lock(b) {
        let app = TestApp::demo(b).await?;
        for _ in 0..5 {
            app.api_login("nurse@demo.kapstone.test", "wrong password!").await?;
        }
        assert_eq!(app.api_login("nurse@demo.kapstone.test", PASSWORD).await?.status(), 401, "locked");
        let admin_token = app.token("admin@demo.kapstone.test").await?;
        let users: Value = app.get_bearer(&admin_token, "/api/v1/users").await?.json().await?;
        let nurse = users["items"].as_array().unwrap().iter().find(|u| u["email"] == "nurse@demo.kapstone.test").unwrap();
        let id = nurse["id"].as_str().unwrap();
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&admin).await?;
        let url = app.url(&format!("/admin/users/{id}/password"));
        let weak = admin.post(&url).form(&[("csrf_token", csrf.as_str()), ("new_password", "short")]).send().await?;
        assert_eq!(weak.status(), 422);
        assert!(weak.text().await?.contains("new_password-error"));
        let ok = admin.post(&url).form(&[("csrf_token", csrf.as_str()), ("new_password", "a fresh start 2026")]).send().await?;
        assert_eq!(ok.status(), 303);
        assert_eq!(app.api_login("nurse@demo.kapstone.test", "a fresh start 2026").await?.status(), 200);
        assert_eq!(
            app.count("audit_events WHERE action = 'user.password_change' AND actor_role = 'admin'").await?,
            1
        );
        app.stop().await
    }
}
