use kapstone_testkit::{PASSWORD, TestApp, both_backends, hidden_csrf, totp_now};
use serde_json::{Value, json};

/// Enrols the signed-in browser client in TOTP; returns (secret, recovery codes).
async fn enrol(app: &TestApp, c: &reqwest::Client) -> anyhow::Result<(String, Vec<String>)> {
    let page = c.get(app.url("/account/mfa")).send().await?.text().await?;
    let secret = page.split("<code class=\"key\">").nth(1).and_then(|s| s.split('<').next()).unwrap().to_owned();
    let csrf = hidden_csrf(&page).unwrap();
    let code = totp_now(&secret);
    let wrong = c
        .post(app.url("/account/mfa"))
        .form(&[("csrf_token", csrf.as_str()), ("password", "not my password"), ("code", code.as_str())])
        .send()
        .await?;
    assert_eq!(wrong.status(), 422, "enrolment needs the account's password");
    let done = c
        .post(app.url("/account/mfa"))
        .form(&[("csrf_token", csrf.as_str()), ("password", PASSWORD), ("code", code.as_str())])
        .send()
        .await?;
    assert_eq!(done.status(), 200);
    let html = done.text().await?;
    let codes: Vec<String> =
        html.split("<li><code>").skip(1).filter_map(|s| s.split('<').next()).map(str::to_owned).collect();
    assert_eq!(codes.len(), 10, "ten recovery codes are shown once");
    Ok((secret, codes))
}

both_backends! {
    async fn totp_enrolment_then_sign_in_needs_the_second_factor(b) {
        let app = TestApp::demo(b).await?;
        let (c, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let (secret, codes) = enrol(&app, &c).await?;
        assert_eq!(app.count("audit_events WHERE action = 'user.mfa_enable'").await?, 1);

        // API: the password alone is not enough.
        let resp = app.api_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "mfa_required");
        assert_eq!(body["error"]["field"], "totp_code");

        // Browser: the password leads to the code step, and nothing else is reachable.
        let (c2, resp) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.headers()["location"], "/login/mfa");
        assert_eq!(c2.get(app.url("/patients")).send().await?.status(), 303);
        assert_eq!(c2.get(app.url("/api/v1/auth/me")).send().await?.status(), 401);
        let page = c2.get(app.url("/login/mfa")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap();
        let wrong = c2.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", "000000")]).send().await?;
        assert_eq!(wrong.status(), 422);
        let ok = c2.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", codes[0].as_str())]).send().await?;
        assert_eq!(ok.status(), 303, "a recovery code completes sign-in");
        assert_eq!(c2.get(app.url("/patients")).send().await?.status(), 200);
        assert_eq!(app.count("audit_events WHERE action = 'auth.recovery_code_used'").await?, 1);

        // A recovery code works once.
        let (c3, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let page = c3.get(app.url("/login/mfa")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap();
        let again = c3.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", codes[0].as_str())]).send().await?;
        assert_eq!(again.status(), 422);

        // A code is accepted once. The next step's code (within the one-step skew) is later than
        // the step claimed at enrolment, so it signs in; sent again, it is refused. (Using "the
        // current code" here would race the 30-second step boundary.)
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let code = kapstone_web::auth::totp::code_at(&secret, now + 30).unwrap();
        let login = || {
            app.client()
                .post(app.url("/api/v1/auth/login"))
                .json(&json!({"email": "prescriber@demo.kapstone.test", "password": PASSWORD, "totp_code": code}))
                .send()
        };
        assert_eq!(login().await?.status(), 200, "the next step's code signs in");
        assert_eq!(login().await?.status(), 401, "a code is accepted only once");
        app.stop().await
    }

    async fn a_clinic_can_require_mfa_for_a_role(b) {
        let app = TestApp::demo(b).await?;
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let home = admin.get(app.url("/")).send().await?.text().await?;
        assert!(home.contains("not yet required for admins"), "admins see a warning banner");
        let csrf = app.csrf_of(&admin).await?;
        let saved = admin
            .post(app.url("/admin/settings"))
            .form(&[("csrf_token", csrf.as_str()), ("mfa_role", "nurse")])
            .send()
            .await?;
        assert_eq!(saved.status(), 303);
        assert_eq!(app.count("audit_events WHERE action = 'settings.update'").await?, 1);

        let (nurse, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let resp = nurse.get(app.url("/patients")).send().await?;
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], "/account/mfa");
        let (_, codes) = enrol(&app, &nurse).await?;
        assert_eq!(codes.len(), 10);
        assert_eq!(nurse.get(app.url("/patients")).send().await?.status(), 200);
        // A nurse may not turn it off while it is required.
        let csrf = app.csrf_of(&nurse).await?;
        let off = nurse
            .post(app.url("/account/mfa/disable"))
            .form(&[("csrf_token", csrf.as_str()), ("password", PASSWORD)])
            .send()
            .await?;
        assert_eq!(off.status(), 422);
        app.stop().await
    }
}

both_backends! {
    async fn a_right_password_does_not_reset_the_count_of_wrong_codes(b) {
        let app = TestApp::demo(b).await?;
        let (c, _) = app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
        let (_, codes) = enrol(&app, &c).await?;
        // A complete sign-in (password + recovery code) starts the count from zero.
        let (c1, _) = app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
        let page = c1.get(app.url("/login/mfa")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap();
        let ok = c1.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", codes[0].as_str())]).send().await?;
        assert_eq!(ok.status(), 303);
        // Four wrong codes, a fresh password sign-in, then one more wrong code: locked.
        for round in 0..2 {
            let (c2, resp) = app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
            assert_eq!(resp.headers()["location"], "/login/mfa", "round {round}");
            let page = c2.get(app.url("/login/mfa")).send().await?.text().await?;
            let csrf = hidden_csrf(&page).unwrap();
            let tries = if round == 0 { 4 } else { 1 };
            for _ in 0..tries {
                c2.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", "000000")]).send().await?;
            }
        }
        assert_eq!(app.count("audit_events WHERE action = 'auth.account_locked'").await?, 1);
        let (_, resp) = app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.status(), 401, "locked: the password alone gets nowhere");
        app.stop().await
    }

    async fn the_code_step_counts_toward_the_sign_in_rate_limit(b) {
        let mut config = kapstone_web::ServerConfig::default();
        config.rate_limits.sign_in_per_account = kapstone_domain::auth::RateLimit::new(6, 15);
        config.lockout.max_failed_attempts = 100;
        let app = TestApp::demo_with(b, config).await?;
        let (c, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let (_, codes) = enrol(&app, &c).await?;
        let (c2, resp) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(resp.headers()["location"], "/login/mfa");
        let page = c2.get(app.url("/login/mfa")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap();
        // Two password steps spent two of the six attempts: the fifth wrong code at the latest is
        // refused by the limit, not judged.
        let mut limited_at = None;
        for attempt in 1..=5 {
            let r = c2.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", "000000")]).send().await?;
            if r.status() == 429 {
                assert!(r.headers().contains_key("retry-after"));
                limited_at = Some(attempt);
                break;
            }
            assert_eq!(r.status(), 422, "attempt {attempt}");
        }
        assert!(limited_at.is_some(), "wrong codes are never limited");
        // Even the right code waits for the window now; nothing was signed in.
        let r = c2.post(app.url("/login/mfa")).form(&[("csrf_token", csrf.as_str()), ("code", codes[0].as_str())]).send().await?;
        assert_eq!(r.status(), 429);
        assert_eq!(c2.get(app.url("/patients")).send().await?.status(), 303);
        assert_eq!(app.count("audit_events WHERE action = 'auth.recovery_code_used'").await?, 0);
        assert!(app.count("audit_events WHERE action = 'access.rate_limited'").await? >= 1);
        app.stop().await
    }

    async fn a_half_finished_sign_in_can_be_abandoned(b) {
        let app = TestApp::demo(b).await?;
        let (c, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        enrol(&app, &c).await?;
        let (c2, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let page = c2.get(app.url("/login/mfa")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap();
        let out = c2.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await?;
        assert_eq!(out.status(), 303);
        // Someone else can now sign in on the same browser.
        let login = c2.get(app.url("/login")).send().await?.text().await?;
        let pre = hidden_csrf(&login).unwrap();
        let resp = c2
            .post(app.url("/login"))
            .form(&[("email", "nurse@demo.kapstone.test"), ("password", PASSWORD), ("csrf_token", pre.as_str())])
            .send()
            .await?;
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], "/");
        app.stop().await
    }
}
