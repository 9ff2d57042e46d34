//! Headless-browser tests: Debian's chromium, driven through chromedriver, against the real
//! server with the demo clinic.
//!
//! Compiled only with `--features browser` (CI installs `chromium` and `chromium-driver` first), so
//! a missing browser or driver fails the tests instead of skipping them. `CHROMIUM` and
//! `CHROMEDRIVER` override `/usr/bin/chromium` and `/usr/bin/chromedriver`. Each test starts its
//! own chromedriver on a free port and kills it (with the browser) when it ends, even on failure.
//! Screenshots (and, when a test fails, the page it failed on) are written to
//! `target/browser-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Display;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use kapstone_testkit::{PASSWORD, TempDir, TestApp, TestBackend};

/// How long to wait for a page, an element or the driver.
const WAIT: Duration = Duration::from_secs(15);

const ADMIN: &str = "admin@demo.kapstone.test";
const PATIENT: &str = "patient1@demo.kapstone.test";

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_navigate_and_sign_out() {
    browser_test("sign_in_navigate_and_sign_out", async |c: &Client, app: &TestApp| {
        sign_in(c, app, ADMIN, PASSWORD).await?;
        wait_for_path(c, "/").await?;
        expect_h1(c, "What is due next").await?;
        let nav = nav_labels(c).await?;
        ensure!(
            nav == [
                "Today",
                "Patients",
                "Schedule",
                "Protocols",
                "Controlled substances",
                "Outcomes",
                "Accounts",
                "Audit log",
                "Outbox",
                "Scheduling",
                "Settings",
                "Integrations",
                "My account"
            ],
            "admin's navigation: {nav:?}"
        );

        // The admin reads the controlled-substance ledger (reports), without forms to handle stock.
        click_nav(c, "Controlled substances").await?;
        wait_for_path(c, "/cs").await?;
        expect_h1(c, "Controlled substances").await?;
        ensure!(
            c.find_all(Locator::Css("form[action='/cs/receipts']")).await?.is_empty(),
            "no receipt form for an admin"
        );

        click_nav(c, "Patients").await?;
        wait_for_path(c, "/patients").await?;
        expect_h1(c, "Patients").await?;
        let rows = c.find_all(Locator::Css("table tbody tr")).await?;
        ensure!(!rows.is_empty(), "the patient table has no rows");
        let first = c.find(Locator::Css("table tbody tr td a")).await?;
        let listed = first.text().await?;
        let (family, given) =
            listed.split_once(", ").with_context(|| format!("patient link {listed:?} is not \"Family, Given\""))?;
        let full_name = format!("{given} {family}");
        first.click().await?;
        let patient_path = wait_for(format!("the record of {full_name}"), async || {
            let path = c.current_url().await?.path().to_owned();
            Ok(path.starts_with("/patients/").then_some(path))
        })
        .await?;
        expect_h1(c, &full_name).await?;
        let patient_id = patient_path.trim_start_matches("/patients/");

        click_nav(c, "Audit log").await?;
        wait_for_path(c, "/admin/audit").await?;
        expect_h1(c, "Audit log").await?;
        // The read just made is in the table (not only in the action filter's options), for that
        // patient.
        let reads = c.find_all(Locator::XPath("//table//tr[td[normalize-space()='patient.read']]")).await?;
        ensure!(!reads.is_empty(), "the audit log lists no patient.read");
        let mut cells = Vec::new();
        for row in &reads {
            let links = row.find_all(Locator::Css("a")).await?;
            for link in links {
                cells.push(link.attr("href").await?.unwrap_or_default());
            }
        }
        ensure!(
            cells.iter().any(|href| href.ends_with(patient_id)),
            "no patient.read row links to patient {patient_id}: {cells:?}"
        );

        c.find(Locator::XPath("//header//form[@action='/logout']//button[normalize-space()='Sign out']"))
            .await?
            .click()
            .await?;
        wait_for_path(c, "/login").await?;
        expect_h1(c, "Sign in").await?;
        ensure!(nav_labels(c).await?.is_empty(), "the navigation is still shown after signing out");

        c.goto(&app.url("/")).await?;
        wait_for_path(c, "/login").await?;
        expect_h1(c, "Sign in").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_shows_an_error_next_to_the_form() {
    browser_test("wrong_password_shows_an_error_next_to_the_form", async |c: &Client, app: &TestApp| {
        sign_in(c, app, ADMIN, "not the password").await?;
        let alert = c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("[role=alert]"))
            .await
            .context("no [role=alert] on the page")?;
        ensure!(alert.is_displayed().await?, "the error is not visible");
        let message = alert.text().await?;
        ensure!(message.contains("incorrect"), "error message: {message:?}");
        ensure!(current_path(c).await? == "/login", "left the sign-in page");
        expect_h1(c, "Sign in").await?;

        let email = c.find(Locator::Css("#email")).await?;
        let kept = email.prop("value").await?.unwrap_or_default();
        ensure!(kept == ADMIN, "the email field holds {kept:?}");
        let described_by = email.attr("aria-describedby").await?.unwrap_or_default();
        let alert_id = alert.attr("id").await?.unwrap_or_default();
        ensure!(
            !alert_id.is_empty() && described_by.split_whitespace().any(|id| id == alert_id),
            "the email field (aria-describedby={described_by:?}) does not point at the error (id={alert_id:?})"
        );
        let password = c.find(Locator::Css("#password")).await?.prop("value").await?.unwrap_or_default();
        ensure!(password.is_empty(), "the password was sent back into the form");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_sees_only_the_portal() {
    browser_test("a_patient_sees_only_the_portal", async |c: &Client, app: &TestApp| {
        sign_in(c, app, PATIENT, PASSWORD).await?;
        wait_for_path(c, "/portal").await?;
        let h1 = h1_text(c).await?;
        ensure!(h1.starts_with("Hello"), "portal h1: {h1:?}");
        let nav = nav_labels(c).await?;
        for wanted in ["My care", "My account"] {
            ensure!(nav.iter().any(|l| l == wanted), "patient's navigation lacks {wanted:?}: {nav:?}");
        }
        for staff_only in ["Today", "Patients", "Accounts", "Audit log", "Outbox", "Settings"] {
            ensure!(!nav.iter().any(|l| l == staff_only), "patient's navigation shows {staff_only:?}: {nav:?}");
        }

        c.goto(&app.url("/patients")).await?;
        expect_h1(c, "This is not available to your account").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keyboard_only_sign_in() {
    browser_test("keyboard_only_sign_in", async |c: &Client, app: &TestApp| {
        c.goto(&app.url("/login")).await?;
        expect_h1(c, "Sign in").await?;
        // The email field has `autofocus`, so a keyboard user starts there; the skip link is the
        // one stop before it.
        expect_focus(c, "email").await?;
        shift_tab(c).await?;
        expect_skip_link_focused(c, "login: Shift+Tab from the email field").await?;
        press(c, Key::Tab).await?;
        expect_focus(c, "email").await?;
        type_text(c, ADMIN).await?;
        press(c, Key::Tab).await?;
        expect_focus(c, "password").await?;
        type_text(c, PASSWORD).await?;
        press(c, Key::Enter).await?;
        wait_for_path(c, "/").await?;
        expect_h1(c, "What is due next").await?;

        // On a page without autofocus the first Tab from the top lands on the skip link, and
        // Enter on it moves focus to <main>.
        press(c, Key::Tab).await?;
        expect_skip_link_focused(c, "home: the first Tab").await?;
        press(c, Key::Enter).await?;
        let main = wait_for("focus on <main>", async || {
            let el = c.active_element().await?;
            Ok((el.attr("id").await?.as_deref() == Some("main")).then_some(el))
        })
        .await?;
        ensure!(main.tag_name().await? == "main", "the skip link target is not <main>");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_of_login_and_home() {
    browser_test("screenshots_of_login_and_home", async |c: &Client, app: &TestApp| {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

        c.goto(&app.url("/login")).await?;
        expect_h1(c, "Sign in").await?;
        save_screenshot(c, &dir.join("login.png")).await?;

        sign_in(c, app, ADMIN, PASSWORD).await?;
        wait_for_path(c, "/").await?;
        expect_h1(c, "What is due next").await?;
        save_screenshot(c, &dir.join("home.png")).await?;
        sign_out(c).await?;

        // A clinician's day: the open safety alert from the demo, then a chart with its scores.
        sign_in(c, app, "therapist@demo.kapstone.test", PASSWORD).await?;
        wait_for_path(c, "/").await?;
        save_screenshot(c, &dir.join("clinician-home.png")).await?;
        c.goto(&app.url("/patients?q=K000001")).await?;
        c.find(Locator::Css("table tbody tr td a")).await?.click().await?;
        wait_for(String::from("a chart"), async || Ok(current_path(c).await?.starts_with("/patients/0").then_some(())))
            .await?;
        save_screenshot(c, &dir.join("chart.png")).await?;
        sign_out(c).await?;

        // The patient's side: the consent to read and sign.
        sign_in(c, app, "patient1@demo.kapstone.test", PASSWORD).await?;
        wait_for_path(c, "/portal").await?;
        save_screenshot(c, &dir.join("portal.png")).await?;
        c.goto(&app.url("/portal/consents/kap-general")).await?;
        save_screenshot(c, &dir.join("consent.png")).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prescriber_reviews_the_consultation_and_signs_eligibility() {
    browser_test("a_prescriber_reviews_the_consultation_and_signs_eligibility", async |c: &Client, app: &TestApp| {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // The demo patient waiting for the prescriber's decision, found through the API.
        let token = app.token("prescriber@demo.kapstone.test").await?;
        let list: serde_json::Value = app.get_bearer(&token, "/api/v1/patients?limit=50").await?.json().await?;
        let mut waiting = None;
        for p in list["items"].as_array().context("patient list")? {
            let id = p["id"].as_str().context("patient id")?;
            let path: serde_json::Value =
                app.get_bearer(&token, &format!("/api/v1/patients/{id}/pathway")).await?.json().await?;
            if path["stage"] == "eligibility" {
                waiting = Some(id.to_owned());
            }
        }
        let id = waiting.context("no demo patient is waiting for an eligibility decision")?;

        sign_in(c, app, "prescriber@demo.kapstone.test", PASSWORD).await?;
        wait_for_path(c, "/").await?;
        c.goto(&app.url(&format!("/patients/{id}"))).await?;
        let stage = c.find(Locator::Css(".stage")).await?.text().await?;
        ensure!(stage == "Eligibility", "stage on the chart: {stage:?}");

        // An impossible reading is refused next to its field, and what was typed stays.
        c.find(Locator::LinkText("Consultation")).await?.click().await?;
        wait_for_path(c, &format!("/patients/{id}/consultation")).await?;
        expect_h1(c, "Consultation").await?;
        let systolic = c.find(Locator::Css("#vitals-systolic_mmhg")).await?;
        systolic.clear().await?;
        systolic.send_keys("400").await?;
        c.find(Locator::XPath("//button[normalize-space()='Save consultation']")).await?.click().await?;
        let error =
            c.wait().at_most(WAIT).for_element(Locator::Css("#vitals-systolic_mmhg-error")).await?.text().await?;
        ensure!(error.contains("between 50 and 300"), "the error next to systolic: {error:?}");
        let kept = c.find(Locator::Css("#vitals-systolic_mmhg")).await?.prop("value").await?.unwrap_or_default();
        ensure!(kept == "400", "the typed value is kept: {kept:?}");
        save_screenshot(c, &dir.join("consultation-error.png")).await?;

        // The findings, then the signature.
        c.goto(&app.url(&format!("/patients/{id}/eligibility"))).await?;
        expect_h1(c, "Eligibility").await?;
        save_screenshot(c, &dir.join("eligibility.png")).await?;
        c.find(Locator::Css("#verdict-eligible")).await?.click().await?;
        c.find(Locator::Css("#route-sublingual_lozenge")).await?.click().await?;
        c.find(Locator::Css("#summary")).await?.send_keys("Two failed adequate trials; no contraindication.").await?;
        c.find(Locator::Css("#sign-password")).await?.send_keys(PASSWORD).await?;
        c.find(Locator::XPath("//button[normalize-space()='Sign the decision']")).await?.click().await?;
        let title = c.wait().at_most(WAIT).for_element(Locator::Css("#decision-title")).await?.text().await?;
        ensure!(title == "Decision in force: Eligible", "after signing: {title:?}");
        save_screenshot(c, &dir.join("eligibility-signed.png")).await?;

        c.goto(&app.url(&format!("/patients/{id}"))).await?;
        let stage = c.find(Locator::Css(".stage")).await?.text().await?;
        ensure!(stage == "Consent", "the next stage is consent, got {stage:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_floor_board_updates_itself_when_a_session_changes() {
    browser_test("the_floor_board_updates_itself_when_a_session_changes", async |c: &Client, app: &TestApp| {
        // Demo patient 3's Spravato session, moved to today so the board lists it.
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let p3 = app.token("patient3@demo.kapstone.test").await?;
        let me: serde_json::Value = app.get_bearer(&p3, "/api/v1/portal/me").await?.json().await?;
        let now = jiff::Timestamp::now();
        let to = now + jiff::SignedDuration::from_hours(24 * 30);
        let list: serde_json::Value =
            app.get_bearer(&nurse, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?.json().await?;
        let a = list["items"]
            .as_array()
            .context("appointments")?
            .iter()
            .find(|a| a["patient_id"] == me["id"] && a["kind"] == "dosing" && a["status"] == "booked")
            .context("a booked Spravato session for patient 3")?;
        let appointment = uuid::Uuid::parse_str(a["id"].as_str().context("id")?)?;
        let start = now - jiff::SignedDuration::from_mins(10);
        let end = start + jiff::SignedDuration::from_mins(120);
        app.raw_sql(&format!(
            "UPDATE appointments SET start_at = {}, end_at = {} WHERE id = X'{}'",
            start.as_microsecond(),
            end.as_microsecond(),
            appointment.simple()
        ))
        .await?;
        let opened = app
            .client()
            .post(app.url(&format!("/api/v1/appointments/{appointment}/session")))
            .bearer_auth(&nurse)
            .json(&serde_json::json!({}))
            .send()
            .await?;
        ensure!(opened.status() == 201, "opening the session: {}", opened.status());
        let session: serde_json::Value = opened.json().await?;
        let id = session["id"].as_str().context("session id")?.to_owned();

        sign_in(c, app, "nurse@demo.kapstone.test", PASSWORD).await?;
        wait_for_path(c, "/").await?;
        click_nav(c, "Floor").await?;
        wait_for_path(c, "/floor").await?;
        // Patient 3's card (the demo's day in progress has other sessions on the board too).
        let seat_xpath =
            format!("//*[@id='floor-board']//article[contains(@class,'seat')][.//a[@href='/sessions/{id}']]");
        let seat = Locator::XPath(&seat_xpath);
        // The board re-renders itself on every change (and each minute), so an element found a
        // moment ago can go stale: every read finds the card afresh and retries a stale one.
        let text = wait_for("patient 3's card", async || Ok(Some(c.find(seat).await?.text().await?))).await?;
        ensure!(text.contains("Scheduled"), "before check-in: {text:?}");
        // The script is connected to the event stream before anything changes.
        wait_for("the live board", async || {
            let live = c.find(Locator::Css("#floor-live")).await?.text().await?;
            Ok(live.starts_with("Live").then_some(()))
        })
        .await?;

        let r = app
            .client()
            .post(app.url(&format!("/api/v1/sessions/{id}/events")))
            .bearer_auth(&nurse)
            .json(&serde_json::json!({"kind": "checked_in",
                "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199"},
                "escort_confirmed_in_person": true,
                "state_of_mind": {"mood": 6, "alcohol_or_substances_last_12h": false, "intoxication_signs": false},
                "pregnancy": "not_applicable"}))
            .send()
            .await?;
        ensure!(r.status() == 201, "check-in through the API: {}", r.status());
        let changed = Instant::now();
        loop {
            // A read that meets a card being replaced is retried, not failed.
            let text = match c.find(seat).await {
                Ok(card) => card.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains("Checked in") {
                break;
            }
            ensure!(changed.elapsed() < Duration::from_secs(2), "the board did not update within 2 s: {text:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ensure!(current_path(c).await? == "/floor", "no reload or navigation");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        save_screenshot(c, &dir.join("floor.png")).await?;
        // The card opens the session page: what is next, and the nurse's forms.
        let link = format!("{seat_xpath}//a");
        let session_path = format!("/sessions/{id}");
        wait_for("the card's link to open the session", async || {
            if current_path(c).await? != session_path {
                c.find(Locator::XPath(&link)).await?.click().await?;
            }
            Ok((current_path(c).await? == session_path).then_some(()))
        })
        .await?;
        let next = c.wait().at_most(WAIT).for_element(Locator::Css("#next")).await?.text().await?;
        ensure!(next.contains("Next step"), "the session page: {next:?}");
        c.find(Locator::Css("#step-vitals")).await?;
        save_screenshot(c, &dir.join("session.png")).await?;
        // Leave the page so the event stream closes before the server stops.
        c.goto(&app.url("/account")).await?;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Page helpers
// ---------------------------------------------------------------------------------------------

/// Types into the sign-in form's fields and clicks its "Sign in" button.
async fn sign_in(c: &Client, app: &TestApp, email: &str, password: &str) -> anyhow::Result<()> {
    c.goto(&app.url("/login")).await?;
    let field = c.wait().at_most(WAIT).for_element(Locator::Css("#email")).await?;
    field.clear().await?;
    field.send_keys(email).await?;
    c.find(Locator::Css("#password")).await?.send_keys(password).await?;
    c.find(Locator::XPath("//form[@action='/login']//button[normalize-space()='Sign in']")).await?.click().await?;
    Ok(())
}

/// Clicks the header's "Sign out" button and waits for the sign-in page.
async fn sign_out(c: &Client) -> anyhow::Result<()> {
    c.find(Locator::XPath("//form[@action='/logout']//button")).await?.click().await?;
    wait_for_path(c, "/login").await
}

async fn current_path(c: &Client) -> anyhow::Result<String> {
    Ok(c.current_url().await?.path().to_owned())
}

async fn wait_for_path(c: &Client, path: &str) -> anyhow::Result<()> {
    wait_for(format!("the URL path {path:?}"), async || {
        let now = current_path(c).await?;
        if now == path { Ok(Some(())) } else { Err(anyhow::anyhow!("still at {now:?}")) }
    })
    .await
}

async fn h1_text(c: &Client) -> anyhow::Result<String> {
    Ok(c.wait().at_most(WAIT).for_element(Locator::Css("h1")).await?.text().await?.trim().to_owned())
}

async fn expect_h1(c: &Client, want: &str) -> anyhow::Result<()> {
    wait_for(format!("an h1 {want:?}"), async || {
        let got = h1_text(c).await?;
        if got == want { Ok(Some(())) } else { Err(anyhow::anyhow!("the h1 is {got:?}")) }
    })
    .await
}

/// The labels of the main navigation's links, in order.
async fn nav_labels(c: &Client) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for link in c.find_all(Locator::Css("nav[aria-label=Main] a")).await? {
        out.push(link.text().await?.trim().to_owned());
    }
    Ok(out)
}

async fn click_nav(c: &Client, label: &str) -> anyhow::Result<()> {
    let xpath = format!("//nav[@aria-label='Main']//a[normalize-space()='{label}']");
    c.find(Locator::XPath(&xpath))
        .await
        .with_context(|| format!("no {label:?} link in the main navigation"))?
        .click()
        .await?;
    Ok(())
}

/// Sends key actions to whatever has focus (no element targeted), as a keyboard would.
async fn keyboard(c: &Client, actions: impl IntoIterator<Item = KeyAction>) -> anyhow::Result<()> {
    let seq = actions.into_iter().fold(KeyActions::new("keyboard".into()), InputSource::then);
    c.perform_actions(seq).await?;
    c.release_actions().await?;
    Ok(())
}

async fn press(c: &Client, key: Key) -> anyhow::Result<()> {
    let k = key.into();
    keyboard(c, [KeyAction::Down { value: k }, KeyAction::Up { value: k }]).await
}

async fn shift_tab(c: &Client) -> anyhow::Result<()> {
    let (shift, tab) = (Key::Shift.into(), Key::Tab.into());
    keyboard(
        c,
        [
            KeyAction::Down { value: shift },
            KeyAction::Down { value: tab },
            KeyAction::Up { value: tab },
            KeyAction::Up { value: shift },
        ],
    )
    .await
}

async fn type_text(c: &Client, text: &str) -> anyhow::Result<()> {
    keyboard(c, text.chars().flat_map(|k| [KeyAction::Down { value: k }, KeyAction::Up { value: k }])).await
}

async fn expect_skip_link_focused(c: &Client, when: &str) -> anyhow::Result<()> {
    let el = c.active_element().await?;
    let tag = el.tag_name().await?;
    let text = el.text().await?;
    let href = el.attr("href").await?.unwrap_or_default();
    ensure!(
        tag == "a" && text == "Skip to main content" && href == "#main",
        "{when} focused <{tag} href={href:?}> {text:?}, not the skip link"
    );
    Ok(())
}

async fn expect_focus(c: &Client, id: &str) -> anyhow::Result<()> {
    let el = c.active_element().await?;
    let got = el.attr("id").await?.unwrap_or_default();
    ensure!(got == id, "focus is on #{got} ({}), not #{id}", el.tag_name().await?);
    Ok(())
}

/// Retries `probe` until it yields a value or [`WAIT`] passes; errors count as "not yet".
async fn wait_for<T>(
    what: impl Display,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let mut last = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = Some(e),
        }
        if start.elapsed() > WAIT {
            match last {
                Some(e) => bail!("timed out after {WAIT:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {WAIT:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the browser is and what it shows, for failure messages.
async fn describe_page(c: &Client) -> String {
    let url = c.current_url().await.map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
    let main = match c.find(Locator::Css("main")).await {
        Ok(m) => m.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut main: String = main.split_whitespace().collect::<Vec<_>>().join(" ");
    if main.chars().count() > 300 {
        main = main.chars().take(300).chain("…".chars()).collect();
    }
    format!("{url} showing {main:?}")
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap_or(Path::new("."));
        workspace.join("target")
    });
    target.join("browser-screenshots")
}

async fn save_screenshot(c: &Client, path: &Path) -> anyhow::Result<()> {
    let png = c.screenshot().await?;
    ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Harness: chromedriver, the browser session, the server
// ---------------------------------------------------------------------------------------------

/// Starts chromedriver, a browser session and a demo server; runs `body`; then closes the
/// browser, stops the server and kills the driver. Panics with `body`'s error (after saving a
/// screenshot of the page it failed on).
async fn browser_test(name: &str, body: impl AsyncFnOnce(&Client, &TestApp) -> anyhow::Result<()>) {
    let driver = Driver::start().await.unwrap_or_else(|e| panic!("{name}: starting chromedriver: {e:#}"));
    let client = driver.session().await.unwrap_or_else(|e| panic!("{name}: starting chromium: {e:#}"));
    let app = TestApp::demo(TestBackend::Sqlite).await.unwrap_or_else(|e| panic!("{name}: starting the server: {e:#}"));

    let outcome = match body(&client, &app).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let dir = screenshot_dir();
            let path = dir.join(format!("failed-{name}.png"));
            let shot = match std::fs::create_dir_all(&dir) {
                Ok(()) => save_screenshot(&client, &path).await.map(|()| path.display().to_string()),
                Err(e) => Err(e.into()),
            };
            let shot = shot.unwrap_or_else(|e| format!("none ({e:#})"));
            Err(format!("{e:#}\n  page: {}\n  screenshot: {shot}", describe_page(&client).await))
        }
    };
    let closed = client.close().await;
    let stopped = app.stop().await;
    drop(driver);

    if let Err(e) = outcome {
        panic!("{name}: {e}");
    }
    if let Err(e) = closed {
        panic!("{name}: closing the browser: {e}");
    }
    if let Err(e) = stopped {
        panic!("{name}: stopping the server: {e:#}");
    }
}

/// A chromedriver process in its own process group; dropping it kills the group (the driver and
/// the browser it started).
struct Driver {
    child: Child,
    port: u16,
    /// The browser's profile, removed when the fields drop: after `Drop::drop` killed the processes.
    profile: TempDir,
}

impl Driver {
    async fn start() -> anyhow::Result<Self> {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        ensure!(
            Path::new(&chromedriver).is_file(),
            "chromedriver not found at {chromedriver} (install Debian's chromium-driver or set CHROMEDRIVER)"
        );
        let port = free_port()?;
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {chromedriver}"))?;
        let mut driver = Self { child, port, profile: TempDir::new() };
        driver.wait_until_ready().await?;
        Ok(driver)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        kapstone_web::install_tls_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let status = format!("{}/status", self.url());
        let start = Instant::now();
        loop {
            if let Some(exit) = self.child.try_wait()? {
                bail!("chromedriver exited at start: {exit}");
            }
            if let Ok(resp) = http.get(&status).send().await
                && resp.status().is_success()
                && let Ok(body) = resp.json::<serde_json::Value>().await
                && body["value"]["ready"] == true
            {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!("chromedriver did not answer on {status} within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless chromium session with a fresh profile.
    async fn session(&self) -> anyhow::Result<Client> {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        ensure!(
            Path::new(&chromium).is_file(),
            "chromium not found at {chromium} (install Debian's chromium or set CHROMIUM)"
        );
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", self.profile.0.display()),
            "--window-size=1280,900".into(),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": chromium, "args": args }));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url())
            .await
            .context("opening a WebDriver session")?;
        Ok(client)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver leads its own process group (`process_group(0)`), which the browser joins.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
