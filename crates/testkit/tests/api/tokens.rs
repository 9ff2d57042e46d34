//! API tokens (issue 8): scopes decide each route (403 outside them), expired and revoked tokens
//! answer 401, the secret is shown once and stored hashed, every use is audited with the token.

use kapstone_testkit::{PASSWORD, TestApp, both_backends, hidden_csrf};
use serde_json::{Value, json};

const ADMIN: &str = "admin@demo.kapstone.test";

/// Creates a token through the API as the admin; returns (id, secret).
async fn create_token(app: &TestApp, admin: &str, scopes: &[&str]) -> anyhow::Result<(String, String)> {
    let resp = app
        .client()
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({ "name": "Billing sync", "scopes": scopes, "expires_in_days": 30 }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 201, "create token: {}", resp.status());
    let body: Value = resp.json().await?;
    Ok((body["id"].as_str().unwrap_or_default().to_owned(), body["token"].as_str().unwrap_or_default().to_owned()))
}

async fn status(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<u16> {
    let c = app.client();
    let req = match method {
        "GET" => c.get(app.url(path)),
        _ => c.post(app.url(path)).json(&body.unwrap_or(json!({}))),
    };
    Ok(req.bearer_auth(token).send().await?.status().as_u16())
}

both_backends! {
    async fn a_token_reaches_only_the_routes_its_scopes_open(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token(ADMIN).await?;
        let (_, clinical) = create_token(&app, &admin, &["clinical:read"]).await?;
        assert!(clinical.starts_with("kst_"), "{clinical}");
        let range = "/api/v1/appointments?limit=500&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";

        // In scope.
        assert_eq!(status(&app, &clinical, "GET", "/api/v1/patients", None).await?, 200);
        assert_eq!(status(&app, &clinical, "GET", "/api/v1/safety-alerts", None).await?, 200);
        // Outside its scopes: 403, whatever the creating admin may do.
        for (method, path) in [
            ("GET", range),
            ("POST", "/api/v1/patients"),
            ("GET", "/api/v1/users"),
            ("GET", "/api/v1/audit"),
            ("GET", "/api/v1/tokens"),
            ("POST", "/api/v1/tokens"),
            ("GET", "/api/v1/webhooks"),
            ("GET", "/api/v1/auth/me"),
            ("GET", "/api/v1/portal/me"),
            ("GET", "/api/v1/settings/outcomes"),
        ] {
            assert_eq!(status(&app, &clinical, method, path, None).await?, 403, "{method} {path}");
        }
        // Never a page: a token on an HTML route is no sign-in at all.
        let page = app.client().get(app.url("/patients")).bearer_auth(&clinical).send().await?;
        assert_eq!(page.status(), 303, "a bearer API token on a page redirects to sign-in");

        let (_, scheduling) = create_token(&app, &admin, &["scheduling"]).await?;
        assert_eq!(status(&app, &scheduling, "GET", range, None).await?, 200);
        assert_eq!(status(&app, &scheduling, "GET", "/api/v1/patients", None).await?, 403);

        let (_, write) = create_token(&app, &admin, &["write", "clinical:read"]).await?;
        let new = json!({"given_name": "Tokenia", "family_name": "Integration", "birth_date": "1980-02-03", "sex_at_birth": "female"});
        let resp = app.client().post(app.url("/api/v1/patients")).bearer_auth(&write).json(&new).send().await?;
        assert_eq!(resp.status(), 201, "{}", resp.text().await?);
        app.stop().await
    }

    async fn expired_revoked_and_unknown_tokens_answer_401(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token(ADMIN).await?;
        let (id, secret) = create_token(&app, &admin, &["clinical:read"]).await?;
        assert_eq!(status(&app, &secret, "GET", "/api/v1/patients", None).await?, 200);

        // Revoked through the API: 401 from then on; a second revoke finds nothing.
        assert_eq!(status(&app, &admin, "POST", &format!("/api/v1/tokens/{id}/revoke"), None).await?, 204);
        assert_eq!(status(&app, &secret, "GET", "/api/v1/patients", None).await?, 401);
        assert_eq!(status(&app, &admin, "POST", &format!("/api/v1/tokens/{id}/revoke"), None).await?, 404);

        // Expired: 401.
        let (id2, secret2) = create_token(&app, &admin, &["clinical:read"]).await?;
        assert_eq!(status(&app, &secret2, "GET", "/api/v1/patients", None).await?, 200);
        app.raw_sql(&format!("UPDATE api_tokens SET expires_at = created_at WHERE prefix = '{}'", &secret2[..12])).await?;
        assert_eq!(status(&app, &secret2, "GET", "/api/v1/patients", None).await?, 401);

        // A made-up token with the right prefix, and one letter changed: 401.
        let forged = format!("kst_{}", "0".repeat(64));
        assert_eq!(status(&app, &forged, "GET", "/api/v1/patients", None).await?, 401);
        let (_, live) = create_token(&app, &admin, &["clinical:read"]).await?;
        let mut tampered = live.clone();
        tampered.pop();
        tampered.push(if live.ends_with('a') { 'b' } else { 'a' });
        assert_eq!(status(&app, &tampered, "GET", "/api/v1/patients", None).await?, 401);

        // The list shows each state.
        let list: Value = app.get_bearer(&admin, "/api/v1/tokens").await?.json().await?;
        let state_of = |id: &str| {
            list["items"].as_array().into_iter().flatten().find(|t| t["id"] == id).map(|t| t["state"].clone())
        };
        assert_eq!(state_of(&id), Some(json!("revoked")));
        assert_eq!(state_of(&id2), Some(json!("expired")));
        app.stop().await
    }

    async fn the_secret_is_shown_once_and_stored_hashed(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token(ADMIN).await?;
        let (id, secret) = create_token(&app, &admin, &["scheduling"]).await?;
        assert_eq!(secret.len(), 4 + 64);
        let hash = kapstone_web::auth::tokens::token_hash(&secret);
        assert_eq!(app.count(&format!("api_tokens WHERE token_hash = '{hash}'")).await?, 1);
        assert_eq!(app.count(&format!("api_tokens WHERE token_hash = '{secret}' OR name = '{secret}'")).await?, 0);
        // Lists never carry the secret, only its first characters.
        let list = app.get_bearer(&admin, "/api/v1/tokens").await?.text().await?;
        assert!(!list.contains(&secret), "the list leaks the secret");
        assert!(list.contains(&secret[..12]) && list.contains(&id));
        // No audit row holds it either.
        assert_eq!(app.count(&format!("audit_events WHERE reason LIKE '%{}%'", &secret[4..])).await?, 0);

        // The page: created through the form, the secret is on the answer and on no later page.
        let (c, _) = app.browser_login(ADMIN, PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let page = c
            .post(app.url("/admin/integrations/tokens"))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Lab feed"), ("scope", "clinical:read"), ("expires_in_days", "7")])
            .send()
            .await?;
        assert_eq!(page.status(), 200);
        let html = page.text().await?;
        let at = html.find("id=\"new-secret\">").map(|i| i + "id=\"new-secret\">".len()).unwrap_or(0);
        let shown: String = html[at..].chars().take_while(|c| *c != '<').collect();
        assert!(shown.starts_with("kst_") && shown.len() == 68, "the page shows the new secret: {shown}");
        assert_eq!(status(&app, &shown, "GET", "/api/v1/patients", None).await?, 200);
        let again = c.get(app.url("/admin/integrations")).send().await?.text().await?;
        assert!(!again.contains(&shown) && again.contains("Lab feed"));
        // A refused form names its field and stores nothing.
        let before = app.count("api_tokens").await?;
        let csrf = hidden_csrf(&again).unwrap_or_default();
        let refused = c
            .post(app.url("/admin/integrations/tokens"))
            .form(&[("csrf_token", csrf.as_str()), ("name", "No scopes"), ("expires_in_days", "7")])
            .send()
            .await?;
        assert_eq!(refused.status(), 422);
        assert!(refused.text().await?.to_lowercase().contains("choose at least one of clinical:read"));
        assert_eq!(app.count("api_tokens").await?, before);
        app.stop().await
    }

    async fn every_use_is_audited_with_the_token(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token(ADMIN).await?;
        let (id, secret) = create_token(&app, &admin, &["clinical:read"]).await?;
        assert_eq!(app.count(&format!("audit_events WHERE action = 'api_token.create' AND entity_id = '{id}'")).await?, 1);
        for _ in 0..3 {
            assert_eq!(status(&app, &secret, "GET", "/api/v1/patients", None).await?, 200);
        }
        assert_eq!(status(&app, &secret, "GET", "/api/v1/users", None).await?, 403);
        let used = format!("audit_events WHERE action = 'api_token.use' AND actor_token_id = '{id}'");
        assert_eq!(app.count(&used).await?, 3);
        // The rows the requests caused name the token too: the patient lists and the refusal.
        assert!(app.count(&format!("audit_events WHERE action = 'patient.list' AND actor_token_id = '{id}'")).await? >= 1);
        assert_eq!(app.count(&format!("audit_events WHERE action = 'access.denied' AND actor_token_id = '{id}'")).await?, 1);
        // Rows of people signed in carry no token.
        assert_eq!(app.count("audit_events WHERE action = 'api_token.create' AND actor_token_id IS NOT NULL").await?, 0);
        let list: Value = app.get_bearer(&admin, "/api/v1/tokens").await?.json().await?;
        assert!(list["items"][0]["last_used_at"].is_string(), "{list}");
        // The chain still verifies with the new column hashed in.
        kapstone_store::audit::verify(&app.db).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        app.stop().await
    }

    async fn only_admins_manage_tokens_and_bad_input_names_the_field(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        assert_eq!(status(&app, &nurse, "GET", "/api/v1/tokens", None).await?, 403);
        let body = json!({ "name": "x", "scopes": ["write"], "expires_in_days": 30 });
        assert_eq!(status(&app, &nurse, "POST", "/api/v1/tokens", Some(body)).await?, 403);
        let admin = app.token(ADMIN).await?;
        for (body, field) in [
            (json!({ "name": "x", "scopes": ["root"], "expires_in_days": 30 }), "scopes"),
            (json!({ "name": "x", "scopes": [], "expires_in_days": 30 }), "scopes"),
            (json!({ "name": " ", "scopes": ["write"], "expires_in_days": 30 }), "name"),
            (json!({ "name": "x", "scopes": ["write"], "expires_in_days": 0 }), "expires_in_days"),
            (json!({ "name": "x", "scopes": ["write"], "expires_in_days": 366 }), "expires_in_days"),
        ] {
            let resp = app.client().post(app.url("/api/v1/tokens")).bearer_auth(&admin).json(&body).send().await?;
            assert_eq!(resp.status(), 422, "{body}");
            let err: Value = resp.json().await?;
            assert_eq!(err["error"]["field"], field, "{err}");
        }
        assert_eq!(app.count("api_tokens").await?, 0);
        app.stop().await
    }
}
