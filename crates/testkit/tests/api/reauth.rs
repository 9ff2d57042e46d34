//! Re-authentication before signing, witnessing and exporting (issue 9): a password entry in the
//! last minutes of the session (sign-in counts), else 422 naming `password` and nothing done.

use kapstone_testkit::{PASSWORD, TestApp, both_backends, hidden_csrf};
use serde_json::{Value, json};

const ADMIN: &str = "admin@demo.kapstone.test";

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(&body).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn an_api_token_is_created_only_after_a_recent_password_entry(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token(ADMIN).await?;
        let body = json!({"name": "Billing sync", "scopes": ["scheduling"], "expires_in_days": 30});
        app.age_authentication().await?;
        let (s, e) = post(&app, &admin, "/api/v1/tokens", body.clone()).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("password")), "{e}");
        let (s, _) = post(&app, &admin, "/api/v1/auth/reauth", json!({"password": "wrong"})).await?;
        assert_eq!(s, 422);
        assert_eq!(app.count("api_tokens").await?, 0, "nothing stored");
        assert_eq!(app.count("audit_events WHERE reason = 'wrong password at re-authentication'").await?, 1, "counted toward lockout");
        let (s, _) = post(&app, &admin, "/api/v1/auth/reauth", json!({"password": PASSWORD})).await?;
        assert_eq!(s, 200);
        let (s, created) = post(&app, &admin, "/api/v1/tokens", body).await?;
        assert_eq!(s, 201, "{created}");
        assert_eq!(app.count("audit_events WHERE action = 'auth.reauthenticated'").await?, 1);
        Ok(())
    }

    async fn exports_need_a_recent_password_entry_and_the_page_offers_the_confirm_step(b) {
        let app = TestApp::demo(b).await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let path = "/api/v1/appointments.csv?from=2026-01-05";
        assert_eq!(app.get_bearer(&front, path).await?.status(), 200, "sign-in counts as a password entry");
        let (c, _) = app.browser_login("frontdesk@demo.kapstone.test", PASSWORD).await?;
        app.age_authentication().await?;
        let resp = app.get_bearer(&front, path).await?;
        assert_eq!(resp.status(), 422);
        let e: Value = resp.json().await?;
        assert_eq!(e["error"]["code"], "reauth_required");
        // The page: refused with a link to the confirm page, which sends the person back.
        let page = c.get(app.url("/schedule.csv?from=2026-01-05")).send().await?;
        assert_eq!(page.status(), 422);
        assert!(page.text().await?.contains("href=\"/reauth\""));
        let form = c.get(app.url("/reauth?next=/schedule.csv%3Ffrom%3D2026-01-05")).send().await?.text().await?;
        let csrf = hidden_csrf(&form).unwrap_or_default();
        assert!(!form.contains("totp_code"), "no code field without a second factor");
        let wrong = c.post(app.url("/reauth")).form(&[("password", "nope"), ("next", "/schedule.csv?from=2026-01-05"), ("csrf_token", &csrf)]).send().await?;
        assert_eq!(wrong.status(), 422);
        let ok = c.post(app.url("/reauth")).form(&[("password", PASSWORD), ("next", "https://evil.example/"), ("csrf_token", &csrf)]).send().await?;
        assert_eq!(ok.status(), 303);
        assert_eq!(ok.headers()["location"], "/account", "never to another site");
        assert_eq!(c.get(app.url("/schedule.csv?from=2026-01-05")).send().await?.status(), 200);
        Ok(())
    }

    async fn an_account_with_a_second_factor_re_authenticates_with_its_code(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token(ADMIN).await?;
        // Enrol TOTP for the admin through the account page.
        let (c, _) = app.browser_login(ADMIN, PASSWORD).await?;
        let page = c.get(app.url("/account/mfa")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap_or_default();
        let secret = page.split("<code class=\"key\">").nth(1).and_then(|r| r.split('<').next()).unwrap_or_default().replace(' ', "");
        let enrolled_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let enrol_code = kapstone_web::auth::totp::code_at(&secret, enrolled_at).unwrap_or_default();
        let enrol = c.post(app.url("/account/mfa")).form(&[("password", PASSWORD), ("code", &enrol_code), ("csrf_token", &csrf)]).send().await?;
        anyhow::ensure!(enrol.status().is_success() || enrol.status().is_redirection(), "enrol: {}", enrol.status());
        app.age_authentication().await?;
        let (s, e) = post(&app, &admin, "/api/v1/auth/reauth", json!({"password": PASSWORD})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("totp_code")), "{e}");
        let (s, e) = post(&app, &admin, "/api/v1/auth/reauth", json!({"password": PASSWORD, "totp_code": "000000"})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("totp_code")), "{e}");
        // The enrolment's code is used up; the next step's code (inside the one step of clock skew
        // allowed) re-authenticates.
        let (s, e) = post(&app, &admin, "/api/v1/auth/reauth", json!({"password": PASSWORD, "totp_code": enrol_code})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("totp_code")), "a code is used once: {e}");
        let next = enrolled_at + 30;
        let code = kapstone_web::auth::totp::code_at(&secret, next).unwrap_or_default();
        let (s, e) = post(&app, &admin, "/api/v1/auth/reauth", json!({"password": PASSWORD, "totp_code": code})).await?;
        assert_eq!(s, 200, "{e}");
        assert!(e["reauthenticated_until"].is_string(), "{e}");
        Ok(())
    }
}
