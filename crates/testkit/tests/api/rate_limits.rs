//! Rate limits (issue 9): counted in the database, so two servers on one database share them;
//! the attempt after the limit is 429 with `Retry-After`, audited with ids only; another address
//! or account is unaffected.

use kapstone_domain::auth::{RateLimit, RateLimits};
use kapstone_testkit::{PASSWORD, TestApp, both_backends, hidden_csrf};
use kapstone_web::ServerConfig;
use serde_json::{Value, json};

const NURSE: &str = "nurse@demo.kapstone.test";
const PRESCRIBER: &str = "prescriber@demo.kapstone.test";

fn limits(f: impl FnOnce(&mut RateLimits)) -> ServerConfig {
    let mut c = ServerConfig::default();
    f(&mut c.rate_limits);
    // Lockout must not be what refuses here.
    c.lockout.max_failed_attempts = 100;
    c
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> anyhow::Result<reqwest::Response> {
    Ok(app
        .client()
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?)
}

/// A 429 with a Retry-After of at most the window, and the JSON error code.
async fn assert_limited(resp: reqwest::Response, window_secs: u64) -> anyhow::Result<()> {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=window_secs).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("try again in"), "{body}");
    Ok(())
}

both_backends! {
    async fn sign_in_is_limited_per_address_across_two_servers(b) {
        let mut config = limits(|l| l.sign_in_per_ip = RateLimit::new(3, 15));
        config.behind_tls_proxy = true;
        let a = TestApp::demo_with(b, config.clone()).await?;
        let second = TestApp::spawn_on(a.fresh.shared(), config).await?;
        assert_eq!(login_from(&a, "10.0.0.1", NURSE, "wrong password 1").await?.status(), 401);
        assert_eq!(login_from(&second, "10.0.0.1", PRESCRIBER, "wrong password 2").await?.status(), 401);
        assert_eq!(login_from(&a, "10.0.0.1", "nobody@demo.kapstone.test", "x").await?.status(), 401);
        // The fourth attempt from that address, on the other server, even with the right password.
        assert_limited(login_from(&second, "10.0.0.1", NURSE, PASSWORD).await?, 15 * 60).await?;
        assert_limited(login_from(&a, "10.0.0.1", NURSE, PASSWORD).await?, 15 * 60).await?;
        // Another address is unaffected.
        assert_eq!(login_from(&second, "10.0.0.2", NURSE, PASSWORD).await?.status(), 200);
        // Audited once for the window, with no email in it.
        assert_eq!(a.count("audit_events WHERE action = 'access.rate_limited'").await?, 1);
        assert_eq!(a.count("audit_events WHERE action = 'access.rate_limited' AND reason LIKE '%@%'").await?, 0);
        assert_eq!(a.count("rate_limit_counters WHERE bucket LIKE '%10.0.0%'").await?, 0, "subjects are hashed");
        second.stop().await?;
        Ok(())
    }

    async fn sign_in_is_limited_per_account_and_other_accounts_are_unaffected(b) {
        let config = limits(|l| l.sign_in_per_account = RateLimit::new(2, 15));
        let a = TestApp::demo_with(b, config.clone()).await?;
        let second = TestApp::spawn_on(a.fresh.shared(), config).await?;
        assert_eq!(a.api_login(NURSE, "wrong password").await?.status(), 401);
        assert_eq!(second.api_login(NURSE, "wrong password").await?.status(), 401);
        assert_limited(a.api_login(NURSE, PASSWORD).await?, 15 * 60).await?;
        // The same email in other capitals is the same account.
        assert_limited(second.api_login("Nurse@Demo.Kapstone.Test", PASSWORD).await?, 15 * 60).await?;
        assert_eq!(a.api_login(PRESCRIBER, PASSWORD).await?.status(), 200);
        let who = a.count("audit_events WHERE action = 'access.rate_limited' AND actor_user_id IS NOT NULL").await?;
        assert_eq!(who, 1, "the refusal names the account by id");
        second.stop().await?;
        Ok(())
    }

    async fn the_sign_in_form_answers_429_with_a_page(b) {
        let app = TestApp::demo_with(b, limits(|l| l.sign_in_per_ip = RateLimit::new(1, 15))).await?;
        let (_, first) = app.browser_login(NURSE, "wrong password").await?;
        assert_eq!(first.status(), 401);
        let (_, second) = app.browser_login(NURSE, PASSWORD).await?;
        assert_eq!(second.status(), 429);
        assert!(second.headers().contains_key("retry-after"));
        let page = second.text().await?;
        assert!(page.contains("Too many attempts") || page.contains("too many attempts"), "{page}");
        Ok(())
    }

    async fn invitation_links_are_limited_per_address(b) {
        let app = TestApp::demo_with(b, limits(|l| l.invitation_accepts_per_ip = RateLimit::new(2, 15))).await?;
        let c = app.browser();
        let page = c.get(app.url("/login")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).unwrap_or_default();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let resp = c
                .post(app.url(&format!("/invite/{}", "0".repeat(64))))
                .form(&[("password", "a long enough secret 2026"), ("csrf_token", csrf.as_str())])
                .send()
                .await?;
            statuses.push(resp.status().as_u16());
        }
        assert_eq!(statuses[2], 429, "{statuses:?}");
        assert!(statuses[..2].iter().all(|s| *s != 429), "{statuses:?}");
        Ok(())
    }

    async fn exports_are_limited_per_account_across_two_servers(b) {
        let config = limits(|l| l.exports = RateLimit::new(2, 60));
        let a = TestApp::demo_with(b, config.clone()).await?;
        let second = TestApp::spawn_on(a.fresh.shared(), config).await?;
        let front = a.token("frontdesk@demo.kapstone.test").await?;
        let nurse = a.token(NURSE).await?;
        let path = "/api/v1/appointments.csv?from=2026-01-05";
        assert_eq!(a.get_bearer(&front, path).await?.status(), 200);
        assert_eq!(second.get_bearer(&front, path).await?.status(), 200);
        assert_limited(a.get_bearer(&front, path).await?, 3600).await?;
        assert_eq!(second.get_bearer(&nurse, path).await?.status(), 200, "another account is unaffected");
        second.stop().await?;
        Ok(())
    }

    async fn password_resets_by_an_admin_are_limited(b) {
        let app = TestApp::demo_with(b, limits(|l| l.password_resets = RateLimit::new(1, 60))).await?;
        let (c, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let users: Value = app.get_bearer(&admin, "/api/v1/users").await?.json().await?;
        let items = users["items"].as_array().or_else(|| users.as_array()).cloned().unwrap_or_default();
        let nurse = items.iter().find(|u| u["email"] == NURSE).map(|u| u["id"].as_str().unwrap_or("").to_owned());
        let nurse = nurse.ok_or_else(|| anyhow::anyhow!("no nurse in {users}"))?;
        let reset = |pw: &'static str| {
            c.post(app.url(&format!("/admin/users/{nurse}/password")))
                .form(&[("password", pw), ("new_password", pw), ("csrf_token", csrf.as_str())])
                .send()
        };
        let first = reset("another long secret 2026").await?;
        assert!(first.status().is_success() || first.status().is_redirection(), "{}", first.status());
        let second = reset("yet another long secret 2026").await?;
        assert_eq!(second.status(), 429);
        assert!(second.headers().contains_key("retry-after"));
        Ok(())
    }
}
