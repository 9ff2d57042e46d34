//! The authorisation matrix (issue 9), generated from the route table and the permission table:
//! every route x every role (and a patient-portal account, and no credentials), with real ids of
//! the demo clinic. Roles the table denies get 403 (no credentials: 401, or the sign-in page),
//! with a body naming no patient; roles it allows are not refused by the guard. Every
//! patient-scoped portal route is called with patient A's ids and patient B's session: refused,
//! without A's data. One demo clinic per backend.

use kapstone_domain::permissions::{Action, allows};
use kapstone_testkit::{TestApp, both_backends};
use kapstone_web::routes;
use serde_json::Value;

/// Ids of the demo clinic to put into paths.
struct Ids {
    patient: String,
    other: String,
}

impl Ids {
    fn path(&self, path: &str) -> String {
        let id =
            if path.contains("/patients/{id}") || path.contains("/Patient/{id}") { &self.patient } else { &self.other };
        path.replace("{id}", id)
            .replace("{consent}", &self.other)
            .replace("{course}", &self.other)
            .replace("{file}", "Patient.ndjson")
            .replace("{type}", "Basic")
            .replace("{token}", &"0".repeat(64))
    }
}

/// Text no refusal may carry: every demo patient's MRN and names.
async fn record_markers(app: &TestApp, admin: &str) -> anyhow::Result<Vec<String>> {
    let list: Value = app.get_bearer(admin, "/api/v1/patients?limit=100").await?.json().await?;
    let mut out = Vec::new();
    for p in list["items"].as_array().cloned().unwrap_or_default() {
        for k in ["mrn", "family_name"] {
            if let Some(v) = p[k].as_str().filter(|v| v.len() > 3) {
                out.push(v.to_owned());
            }
        }
    }
    anyhow::ensure!(out.len() >= 10, "the demo's patients: {list}");
    Ok(out)
}

fn leaks<'a>(body: &str, markers: &'a [String]) -> Option<&'a String> {
    markers.iter().find(|m| body.contains(m.as_str()))
}

async fn call(
    app: &TestApp,
    route: &routes::RouteDef,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String, String)> {
    let mut req = app.client().request(route.method.clone(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if route.method != reqwest::Method::GET && route.method != reqwest::Method::DELETE {
        // A body no handler accepts: a route the guard lets through answers 4xx, changing nothing.
        req = req.header("content-type", "application/json").body("{");
    }
    // Long-lived responses (the floor board's event stream) are let through by the guard and
    // never end: a request still open after a few seconds was not refused.
    let resp = match req.timeout(std::time::Duration::from_secs(5)).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Ok((200, String::new(), String::new())),
        Err(e) => return Err(e.into()),
    };
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = match resp.text().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => String::new(),
        Err(e) => return Err(e.into()),
    };
    Ok((status, location, body))
}

/// The guard's refusal: 403 with the generic "forbidden" error (JSON, FHIR or page).
fn refused_by_guard(status: u16, body: &str) -> bool {
    status == 403 && (body.contains("\"forbidden\"") || body.contains("This is not available to your account"))
}

both_backends! {
    async fn every_route_and_role_is_decided_by_the_permission_table(b) {
        let app = TestApp::demo(b).await?;
        let tokens = app.tokens_by_role().await?;
        let admin = &tokens[0].1;
        let markers = record_markers(&app, admin).await?;
        let me: Value = app.get_bearer(&tokens[5].1, "/api/v1/portal/me").await?.json().await?;
        let ids = Ids { patient: me["id"].as_str().unwrap_or_default().to_owned(), other: uuid::Uuid::now_v7().to_string() };

        let table = routes::table();
        let (mut denied, mut allowed) = (0, 0);
        let mut problems = Vec::new();
        for route in &table {
            if route.action == Action::Public {
                continue;
            }
            let url = app.url(&ids.path(route.path));
            let (status, location, body) = call(&app, route, &url, None).await?;
            if !(status == 401 || (status == 303 && location == "/login")) {
                problems.push(format!("anonymous {} {}: {status}", route.method, route.path));
            }
            if let Some(m) = leaks(&body, &markers) {
                problems.push(format!("anonymous {} {} leaks {m}", route.method, route.path));
            }
            for (role, token) in &tokens {
                // Signing out ends the session the rest of the walk needs.
                if route.action == Action::SignOut {
                    continue;
                }
                let (status, _, body) = call(&app, route, &url, Some(token)).await?;
                if allows(Some(*role), route.action) {
                    allowed += 1;
                    if status == 401 || refused_by_guard(status, &body) {
                        problems.push(format!("{role:?} may {} {} but got {status}", route.method, route.path));
                    }
                } else {
                    denied += 1;
                    if !refused_by_guard(status, &body) {
                        problems.push(format!("{role:?} may not {} {} but got {status}", route.method, route.path));
                    }
                    if let Some(m) = leaks(&body, &markers) {
                        problems.push(format!("{role:?} refused on {} {} but the body has {m}", route.method, route.path));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
        assert!(denied > 300 && allowed > 300, "denied {denied}, allowed {allowed}");
        app.stop().await
    }

    async fn every_portal_route_refuses_a_second_patient_with_the_first_patients_ids(b) {
        let app = TestApp::demo(b).await?;
        let a = app.token("patient1@demo.kapstone.test").await?;
        let other = app.token("patient2@demo.kapstone.test").await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let markers_all = record_markers(&app, &admin).await?;
        let me: Value = app.get_bearer(&a, "/api/v1/portal/me").await?.json().await?;
        let a_markers: Vec<String> = ["mrn", "family_name"].iter().filter_map(|k| me[*k].as_str().map(str::to_owned)).collect();
        anyhow::ensure!(a_markers.iter().all(|m| markers_all.contains(m)));
        // A's own ids, as A's portal shows them: every `/portal/<kind>/<id>` link of A's pages,
        // A's journal entries and record requests from the JSON API.
        let entry = app.client().post(app.url("/api/v1/portal/journal")).bearer_auth(&a)
            .json(&serde_json::json!({"text": "A private line for the matrix"})).send().await?;
        anyhow::ensure!(entry.status() == 201, "journal entry: {}", entry.status());
        let request = app.client().post(app.url("/api/v1/portal/record-requests")).bearer_auth(&a)
            .json(&serde_json::json!({"kind": "access"})).send().await?;
        anyhow::ensure!(request.status() == 201, "record request: {}", request.status());
        // A questionnaire sent to A (its portal id is the assignment's).
        let (nurse, _) = app.browser_login("nurse@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let csrf = app.csrf_of(&nurse).await?;
        let sent = nurse.post(app.url(&format!("/patients/{}/assign", me["id"].as_str().unwrap_or_default())))
            .form(&[("csrf_token", csrf.as_str()), ("instrument", "phq9")]).send().await?;
        anyhow::ensure!(sent.status() == 200, "assignment: {}", sent.status());
        let mut found: Vec<(String, String)> = Vec::new();
        for page in ["/portal", "/portal/journal", "/portal/records"] {
            let html = app.get_bearer(&a, page).await?.text().await?;
            for piece in html.split("href=\"/portal/").chain(html.split("action=\"/portal/")).skip(1) {
                let link: String = piece.chars().take_while(|c| *c != '"').collect();
                let mut parts = link.split('/');
                if let (Some(kind), Some(id)) = (parts.next(), parts.next())
                    && !id.is_empty()
                    && !id.contains(['?', '#'])
                {
                    found.push((kind.to_owned(), id.to_owned()));
                }
            }
        }
        for (path, kind) in [("/api/v1/portal/journal", "journal"), ("/api/v1/portal/record-requests", "records")] {
            let list: Value = app.get_bearer(&a, path).await?.json().await?;
            let items = list["items"].as_array().or_else(|| list["requests"].as_array()).or_else(|| list.as_array());
            for item in items.cloned().unwrap_or_default() {
                if let Some(id) = item["id"].as_str() {
                    found.push((kind.to_owned(), id.to_owned()));
                }
            }
        }
        let id_of = |kind: &str| found.iter().find(|(k, _)| k == kind).map(|(_, id)| id.clone());
        let mut checked = 0;
        let mut problems = Vec::new();
        for route in routes::table() {
            if route.action != Action::PortalSelf || !route.path.contains("{id}") {
                continue;
            }
            let kind = route.path.trim_start_matches("/api/v1").trim_start_matches("/portal/").split('/').next().unwrap_or("");
            let kind = match kind {
                "record-requests" => "records",
                k => k,
            };
            // Every portal kind must have a real id of A's here.
            let Some(id) = id_of(kind) else {
                problems.push(format!("no id of patient A for {} {}", route.method, route.path));
                continue;
            };
            let url = app.url(&route.path.replace("{id}", &id));
            let (status, _, body) = call(&app, &route, &url, Some(&other)).await?;
            checked += 1;
            // Consent ids name the clinic's consent documents, the same for every patient: B may
            // open the document for B; only A's data must not show (checked below).
            if kind != "consents" && !matches!(status, 400 | 403 | 404 | 415 | 422) {
                problems.push(format!("patient B {} {} with A's id: {status}", route.method, route.path));
            }
            if let Some(m) = leaks(&body, &a_markers) {
                problems.push(format!("patient B {} {} sees A's {m}", route.method, route.path));
            }
            // The GETs B is refused, A may read: the ids are real.
            if route.method == reqwest::Method::GET {
                let (status, _, _) = call(&app, &route, &url, Some(&a)).await?;
                if status == 404 || status == 403 {
                    problems.push(format!("patient A {} {} with A's own id: {status}", route.method, route.path));
                }
            }
        }
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
        assert!(checked >= 8, "checked {checked} portal routes with ids");
        app.stop().await
    }
}
