use std::time::Duration;

use kapstone_domain::auth::{LockoutPolicy, SessionPolicy};
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use kapstone_web::ServerConfig;
use serde_json::Value;

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["error"].clone())
}

both_backends! {
    async fn api_sign_in_returns_a_token_that_identifies_the_user(b) {
        let app = TestApp::demo(b).await?;
        let resp = app.api_login("Nurse@Demo.Kapstone.test", PASSWORD).await?;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await?;
        let token = body["token"].as_str().unwrap();
        assert_eq!(token.len(), 64);
        assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["user"]["role"], "nurse");
        let me: Value = app.get_bearer(token, "/api/v1/auth/me").await?.json().await?;
        assert_eq!(me["email"], "nurse@demo.kapstone.test");
        // The token is stored only as a hash.
        let stored = app.count(&format!("sessions WHERE token_hash = '{token}'")).await?;
        assert_eq!(stored, 0);
        app.stop().await
    }

    async fn wrong_password_and_unknown_email_answer_the_same(b) {
        let app = TestApp::demo(b).await?;
        let (s1, e1) = error_of(app.api_login("nurse@demo.kapstone.test", "not the password").await?).await;
        let (s2, e2) = error_of(app.api_login("nobody@demo.kapstone.test", "not the password").await?).await;
        assert_eq!((s1, s2), (401, 401));
        assert_eq!(e1, e2, "the answer must not reveal whether the account exists");
        let resp = app.get_bearer("0".repeat(64).as_str(), "/api/v1/auth/me").await?;
        assert_eq!(resp.status(), 401);
        let resp = app.client().get(app.url("/api/v1/auth/me")).send().await?;
        assert_eq!(resp.status(), 401);
        app.stop().await
    }

    async fn five_failures_lock_the_account_and_are_audited(b) {
        let app = TestApp::demo(b).await?;
        for _ in 0..5 {
            let resp = app.api_login("therapist@demo.kapstone.test", "wrong password!").await?;
            assert_eq!(resp.status(), 401);
        }
        // Locked: even the right password gets no token.
        let resp = app.api_login("therapist@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await?;
        assert!(body.get("token").is_none());
        assert_eq!(app.count("audit_events WHERE action = 'auth.account_locked'").await?, 1);
        assert_eq!(app.count("audit_events WHERE action = 'auth.sign_in_failed'").await?, 6);
        // Other accounts are unaffected.
        assert_eq!(app.api_login("nurse@demo.kapstone.test", PASSWORD).await?.status(), 200);
        app.stop().await
    }

    async fn the_lock_lifts_after_the_configured_time(b) {
        let config = ServerConfig {
            lockout: LockoutPolicy { max_failed_attempts: 2, lock_for: time::Duration::milliseconds(600) },
            ..ServerConfig::default()
        };
        let app = TestApp::demo_with(b, config).await?;
        for _ in 0..2 {
            app.api_login("frontdesk@demo.kapstone.test", "wrong password!").await?;
        }
        assert_eq!(app.api_login("frontdesk@demo.kapstone.test", PASSWORD).await?.status(), 401);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(app.api_login("frontdesk@demo.kapstone.test", PASSWORD).await?.status(), 200);
        app.stop().await
    }

    async fn idle_and_absolute_timeouts_end_sessions(b) {
        let config = ServerConfig {
            session: SessionPolicy { idle_timeout: time::Duration::milliseconds(800), absolute_lifetime: time::Duration::hours(1) },
            ..ServerConfig::default()
        };
        let app = TestApp::demo_with(b, config).await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&token, "/api/v1/auth/me").await?.status(), 200);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(app.get_bearer(&token, "/api/v1/auth/me").await?.status(), 401);
        assert_eq!(app.count("audit_events WHERE action = 'auth.session_ended' AND reason = 'idle timeout'").await?, 1);
        app.stop().await?;

        let config = ServerConfig {
            session: SessionPolicy { idle_timeout: time::Duration::hours(1), absolute_lifetime: time::Duration::milliseconds(800) },
            ..ServerConfig::default()
        };
        let app = TestApp::demo_with(b, config).await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(app.get_bearer(&token, "/api/v1/auth/me").await?.status(), 401);
        app.stop().await
    }

    async fn api_sign_out_ends_the_token(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("prescriber@demo.kapstone.test").await?;
        let resp = app.client().post(app.url("/api/v1/auth/logout")).bearer_auth(&token).send().await?;
        assert_eq!(resp.status(), 204);
        assert_eq!(app.get_bearer(&token, "/api/v1/auth/me").await?.status(), 401);
        app.stop().await
    }

    async fn bad_sign_in_bodies_get_4xx_naming_the_problem(b) {
        let app = TestApp::demo(b).await?;
        let url = app.url("/api/v1/auth/login");
        let c = app.client();
        let audit_before = app.count("audit_events").await?;
        let send = |body: &'static str| c.post(&url).header("content-type", "application/json").body(body).send();

        let (s, e) = error_of(send("{\"email\": ").await?).await;
        assert_eq!(s, 400);
        assert!(e["message"].as_str().unwrap().contains("malformed JSON"));

        let (s, e) = error_of(send(r#"{"email": ["a"], "password": "x"}"#).await?).await;
        assert_eq!((s, e["field"].as_str()), (400, Some("email")));

        let (s, e) = error_of(send(r#"{"email": "a@b.co"}"#).await?).await;
        assert_eq!((s, e["field"].as_str()), (400, Some("password")));

        let (s, e) = error_of(send(r#"{"email": "a@b.co", "password": "x", "admin": true}"#).await?).await;
        assert_eq!((s, e["field"].as_str()), (400, Some("admin")));

        let (s, e) = error_of(send(r#"{"email": "not-an-email", "password": "x"}"#).await?).await;
        assert_eq!((s, e["field"].as_str()), (422, Some("email")));

        let (s, _) = error_of(c.post(&url).body("email=a").header("content-type", "text/plain").send().await?).await;
        assert_eq!(s, 415);

        let huge = format!("{{\"email\": \"{}\", \"password\": \"x\"}}", "a".repeat(400 * 1024));
        let resp = c.post(&url).header("content-type", "application/json").body(huge).send().await?;
        assert_eq!(resp.status(), 413);

        assert_eq!(app.count("audit_events").await?, audit_before, "rejected input writes nothing");
        assert_eq!(app.count("sessions").await?, 0);
        app.stop().await
    }

    async fn browser_sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_it(b) {
        let app = TestApp::demo(b).await?;
        let (c, resp) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], "/");
        let cookie = resp.headers()["set-cookie"].to_str()?.to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let home = c.get(app.url("/")).send().await?;
        assert_eq!(home.status(), 200);
        let html = home.text().await?;
        assert!(html.contains("What is due next"));
        assert!(html.contains("Sign out"));

        let csrf = app.csrf_of(&c).await?;
        let out = c.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await?;
        assert_eq!(out.status(), 303);
        assert_eq!(out.headers()["location"], "/login");
        let after = c.get(app.url("/")).send().await?;
        assert_eq!(after.status(), 303, "signed out: the home page sends you to sign in");
        assert_eq!(app.count("audit_events WHERE action = 'auth.sign_out'").await?, 1);
        app.stop().await
    }

    async fn secure_cookies_behind_a_tls_proxy(b) {
        let app = TestApp::spawn_with(b, ServerConfig { behind_tls_proxy: true, ..ServerConfig::default() }).await?;
        app.seed().await?;
        let login_page = app.client().get(app.url("/login")).send().await?;
        let pre = login_page.headers()["set-cookie"].to_str()?.to_owned();
        assert!(pre.starts_with("__Host-kapstone_csrf=") && pre.contains("; Secure"), "{pre}");
        assert!(login_page.headers().contains_key("strict-transport-security"));
        let (_, resp) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.status(), 303);
        let session = resp.headers()["set-cookie"].to_str()?.to_owned();
        assert!(session.starts_with("__Host-kapstone_session=") && session.contains("; Secure"), "{session}");
        app.stop().await
    }

    async fn login_form_without_its_csrf_token_is_refused(b) {
        let app = TestApp::demo(b).await?;
        let c = app.browser();
        c.get(app.url("/login")).send().await?;
        let resp = c
            .post(app.url("/login"))
            .form(&[("email", "admin@demo.kapstone.test"), ("password", PASSWORD), ("csrf_token", "forged")])
            .send()
            .await?;
        assert_eq!(resp.status(), 403);
        assert!(resp.headers().get("set-cookie").is_none());
        assert_eq!(app.count("sessions").await?, 0);
        app.stop().await
    }

    async fn wrong_password_on_the_form_shows_the_message_and_keeps_the_email(b) {
        let app = TestApp::demo(b).await?;
        let (_, resp) = app.browser_login("nurse@demo.kapstone.test", "wrong password!").await?;
        assert_eq!(resp.status(), 401);
        let html = resp.text().await?;
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("value=\"nurse@demo.kapstone.test\""));
        app.stop().await
    }
}

both_backends! {
    async fn a_public_form_posted_from_a_signed_in_browser_uses_its_pre_session_token(b) {
        let app = TestApp::demo(b).await?;
        let (fd, _) = app.browser_login("frontdesk@demo.kapstone.test", PASSWORD).await?;
        let token = app.token("frontdesk@demo.kapstone.test").await?;
        let list: serde_json::Value = app.get_bearer(&token, "/api/v1/patients?q=K000012").await?.json().await?;
        let id = list["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        let csrf = app.csrf_of(&fd).await?;
        let sent = fd
            .post(app.url(&format!("/patients/{id}/invite")))
            .form(&[("csrf_token", csrf.as_str()), ("email", "shared.computer@example.test")])
            .send()
            .await?;
        assert_eq!(sent.status(), 200);
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let outbox = admin.get(app.url("/admin/outbox")).send().await?.text().await?;
        let link = outbox
            .split("/invite/")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_hexdigit()).next())
            .unwrap_or_default()
            .to_owned();
        // The invitation is opened in a browser where someone is still signed in.
        let page = fd.get(app.url(&format!("/invite/{link}"))).send().await?.text().await?;
        let pre = kapstone_testkit::hidden_csrf(&page).unwrap_or_default();
        assert_ne!(pre, csrf, "the form carries the pre-session token");
        let with_session_token = fd
            .post(app.url(&format!("/invite/{link}")))
            .form(&[("csrf_token", csrf.as_str()), ("password", "shared computer passphrase")])
            .send()
            .await?;
        assert_eq!(with_session_token.status(), 403, "the session's token does not stand in for it");
        let ok = fd
            .post(app.url(&format!("/invite/{link}")))
            .form(&[("csrf_token", pre.as_str()), ("password", "shared computer passphrase")])
            .send()
            .await?;
        assert_eq!(ok.status(), 303);
        assert_eq!(ok.headers()["location"], "/portal");
        app.stop().await
    }
}
