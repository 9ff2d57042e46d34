//! Two patients of the same clinic: patient A (patient1@) and patient B (patient2@). Whatever B
//! sends to any portal route, B reads and writes only B's own record: questionnaires, consents,
//! the portal page, the JSON `me`, and the "who viewed my record" list. Staff routes refuse
//! patient accounts even with A's real ids. Every check counts rows per patient in the database.

use kapstone_domain::permissions::{Action, roles_allowed};
use kapstone_domain::{PatientId, Role};
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends, hidden_csrf};
use kapstone_web::routes;
use serde_json::{Value, json};

const A: &str = "patient1@demo.kapstone.test";
const B: &str = "patient2@demo.kapstone.test";
const NURSE: &str = "nurse@demo.kapstone.test";

/// A demo patient as the portal API reports it.
struct Patient {
    id: String,
    mrn: String,
    name: String,
    token: String,
}

impl Patient {
    fn pid(&self) -> PatientId {
        self.id.parse().unwrap()
    }
}

async fn patient(app: &TestApp, email: &str) -> anyhow::Result<Patient> {
    let token = app.token(email).await?;
    let me: Value = app.get_bearer(&token, "/api/v1/portal/me").await?.json().await?;
    let name = format!("{} {}", me["given_name"].as_str().unwrap(), me["family_name"].as_str().unwrap());
    Ok(Patient { id: me["id"].as_str().unwrap().to_owned(), mrn: me["mrn"].as_str().unwrap().to_owned(), name, token })
}

/// A and B from the demo, checked to be told apart by id, MRN and name.
async fn two_patients(app: &TestApp) -> anyhow::Result<(Patient, Patient)> {
    let (a, b) = (patient(app, A).await?, patient(app, B).await?);
    assert_eq!((a.mrn.as_str(), b.mrn.as_str()), ("K000001", "K000002"));
    assert_ne!(a.id, b.id);
    assert_ne!(a.name, b.name, "the demo names must differ for the name checks to mean anything");
    Ok((a, b))
}

/// A uuid as an SQL literal for a uuid column (a 16-byte BLOB on SQLite).
fn uuid_sql(app: &TestApp, id: &str) -> String {
    let id = uuid::Uuid::parse_str(id).unwrap();
    match app.backend {
        TestBackend::Sqlite => format!("X'{}'", id.simple()),
        TestBackend::Postgres => format!("'{id}'"),
    }
}

/// Rows of `table` (with an optional extra condition) belonging to patient `p`.
async fn rows_of(app: &TestApp, table: &str, p: &Patient, and: &str) -> anyhow::Result<i64> {
    let lit = uuid_sql(app, &p.id);
    let extra = if and.is_empty() { String::new() } else { format!(" AND {and}") };
    app.count(&format!("{table} WHERE patient_id = {lit}{extra}")).await
}

async fn responses(app: &TestApp, p: &Patient) -> anyhow::Result<i64> {
    rows_of(app, "questionnaire_responses", p, "").await
}

async fn open_assignments(app: &TestApp, p: &Patient) -> anyhow::Result<i64> {
    rows_of(app, "questionnaire_assignments", p, "completed_at IS NULL").await
}

async fn consents(app: &TestApp, p: &Patient) -> anyhow::Result<i64> {
    rows_of(app, "consents", p, "").await
}

/// Audit events of one action naming the patient (the audit table stores the id as text).
async fn audited(app: &TestApp, action: &str, p: &Patient) -> anyhow::Result<i64> {
    app.count(&format!("audit_events WHERE action = '{action}' AND patient_id = '{}'", p.id)).await
}

/// Neither A's id, MRN nor name appears in what B was shown.
fn no_trace_of(body: &str, a: &Patient, what: &str) {
    for (label, v) in [("id", &a.id), ("MRN", &a.mrn), ("name", &a.name)] {
        assert!(!body.contains(v.as_str()), "{what} shows patient A's {label} {v:?}");
    }
}

/// The assignment ids the portal home page links to.
async fn portal_links(app: &TestApp, c: &reqwest::Client) -> anyhow::Result<Vec<String>> {
    let home = c.get(app.url("/portal")).send().await?.text().await?;
    Ok(home
        .split("href=\"/portal/questionnaires/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect())
}

fn phq9_fields(csrf: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = (1..=9).map(|n| (format!("item{n}"), "0".to_owned())).collect();
    f.push(("csrf_token".into(), csrf.to_owned()));
    f.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    f
}

/// The hash the consent page asks to be sent back with a signature.
fn consent_hash(page: &str) -> String {
    page.split("name=\"document_sha256\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned()
}

/// Signs kap-general in the portal as `c`, typing `name`, with any extra form fields.
async fn sign(
    app: &TestApp,
    c: &reqwest::Client,
    doc: &str,
    name: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    let page = c.get(app.url("/portal/consents/kap-general")).send().await?.text().await?;
    let csrf = hidden_csrf(&page).unwrap();
    let hash = consent_hash(&page);
    let mut f: Vec<(&str, &str)> =
        vec![("csrf_token", csrf.as_str()), ("signed_name", name), ("document_sha256", hash.as_str())];
    f.extend_from_slice(extra);
    Ok(c.post(app.url(&format!("/portal/consents/{doc}"))).form(&f).send().await?)
}

/// Counts of A's rows in every table a staff route could write, plus A's audit trail.
async fn a_snapshot(app: &TestApp, a: &Patient) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let tables = [
        ("questionnaire_responses", ""),
        ("questionnaire_assignments", ""),
        ("consents", "revoked_at IS NULL"),
        ("safety_alerts", "acknowledged_at IS NULL"),
        ("consultations", ""),
        ("eligibility_decisions", ""),
        ("pathway_events", ""),
    ];
    let mut out = Vec::new();
    for (t, and) in tables {
        out.push((t, rows_of(app, t, a, and).await?));
    }
    out.push(("audit_events", app.count(&format!("audit_events WHERE patient_id = '{}'", a.id)).await?));
    out.push(("users", app.count("users WHERE active").await?));
    Ok(out)
}

fn views(page: &str) -> usize {
    page.matches("opened your record</li>").count()
}

both_backends! {
    async fn b_can_neither_open_nor_submit_a_questionnaire_sent_to_a(b) {
        let app = TestApp::demo(b).await?;
        let (pa, pb) = two_patients(&app).await?;
        // The demo seeds responses for both; every check below is against these counts.
        let (ra, rb) = (responses(&app, &pa).await?, responses(&app, &pb).await?);
        assert!(ra > 0 && rb > 0, "the per-patient count matches seeded rows");
        let (sa, sb) = (audited(&app, "questionnaire.submit", &pa).await?, audited(&app, "questionnaire.submit", &pb).await?);
        let (oa, ob) = (open_assignments(&app, &pa).await?, open_assignments(&app, &pb).await?);
        let (a_web, _) = app.browser_login(A, PASSWORD).await?;
        let (b_web, _) = app.browser_login(B, PASSWORD).await?;
        let (a_before, b_before) = (portal_links(&app, &a_web).await?, portal_links(&app, &b_web).await?);

        // A nurse sends the PHQ-9 to both through the chart form.
        let (nurse, _) = app.browser_login(NURSE, PASSWORD).await?;
        let csrf = app.csrf_of(&nurse).await?;
        for p in [&pa, &pb] {
            let sent = nurse
                .post(app.url(&format!("/patients/{}/assign", p.id)))
                .form(&[("csrf_token", csrf.as_str()), ("instrument", "phq9")])
                .send()
                .await?;
            assert_eq!(sent.status(), 200);
        }
        assert_eq!((open_assignments(&app, &pa).await?, open_assignments(&app, &pb).await?), (oa + 1, ob + 1));

        let a_links = portal_links(&app, &a_web).await?;
        let b_links = portal_links(&app, &b_web).await?;
        // The portal's {id} is the assignment id: each portal lists exactly its own open ones.
        for (p, links) in [(&pa, &a_links), (&pb, &b_links)] {
            let open = kapstone_store::questionnaires::open_assignments(&app.db, p.pid()).await?;
            assert_eq!(open.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(), *links, "{}", p.mrn);
        }
        assert!(a_links.iter().all(|l| !b_links.contains(l)), "no assignment of A on B's portal");
        let new = |links: &[String], before: &[String]| -> Vec<String> {
            links.iter().filter(|l| !before.contains(l)).cloned().collect()
        };
        let (a_new, b_new) = (new(&a_links, &a_before), new(&b_links, &b_before));
        assert_eq!((a_new.len(), b_new.len()), (1, 1));
        let a_form = app.url(&format!("/portal/questionnaires/{}", a_new[0]));

        // B opens A's assignment: not found, and nothing of A or the form shows.
        let got = b_web.get(&a_form).send().await?;
        assert_eq!(got.status(), 404);
        let html = got.text().await?;
        assert!(!html.contains("Little interest or pleasure"), "no questionnaire form for B");
        assert!(!html.contains(&a_new[0]), "the page does not echo A's assignment");
        no_trace_of(&html, &pa, "B's view of A's questionnaire");

        // B submits answers to A's assignment, with and without naming A: refused, nothing stored.
        let b_csrf = app.csrf_of(&b_web).await?;
        for extra in [vec![], vec![("patient_id", pa.id.as_str()), ("mrn", pa.mrn.as_str())]] {
            let post = b_web.post(&a_form).form(&phq9_fields(&b_csrf, &extra)).send().await?;
            assert_eq!(post.status(), 404, "B posting to A's assignment");
            no_trace_of(&post.text().await?, &pa, "B's post to A's questionnaire");
        }
        // Other guesses at {id}: the instrument name, A's patient id, a stranger's id.
        for id in ["phq9", pa.id.as_str(), "01a21565-0000-7000-8000-000000000000"] {
            let url = app.url(&format!("/portal/questionnaires/{id}"));
            assert_eq!(b_web.get(&url).send().await?.status(), 404, "GET {id}");
            assert_eq!(b_web.post(&url).form(&phq9_fields(&b_csrf, &[])).send().await?.status(), 404, "POST {id}");
        }
        assert_eq!((responses(&app, &pa).await?, responses(&app, &pb).await?), (ra, rb));
        assert_eq!((open_assignments(&app, &pa).await?, open_assignments(&app, &pb).await?), (oa + 1, ob + 1));
        assert_eq!(audited(&app, "questionnaire.submit", &pa).await?, sa);

        // B fills B's own assignment, adding fields that name A: it is stored for B only.
        let b_form = app.url(&format!("/portal/questionnaires/{}", b_new[0]));
        let extra = [("patient_id", pa.id.as_str()), ("patient", pa.id.as_str()), ("mrn", pa.mrn.as_str())];
        let done = b_web.post(&b_form).form(&phq9_fields(&b_csrf, &extra)).send().await?;
        assert_eq!(done.status(), 200);
        no_trace_of(&done.text().await?, &pa, "B's thank-you page");
        assert_eq!((responses(&app, &pa).await?, responses(&app, &pb).await?), (ra, rb + 1));
        assert_eq!((open_assignments(&app, &pa).await?, open_assignments(&app, &pb).await?), (oa + 1, ob));
        let by_b = format!("entered_by = {}", uuid_sql(&app, app.get_bearer(&pb.token, "/api/v1/auth/me").await?.json::<Value>().await?["id"].as_str().unwrap()));
        let b_entered = rows_of(&app, "questionnaire_responses", &pb, &by_b).await?;
        assert!(b_entered >= 1, "B's own portal entries are B's");
        assert_eq!(rows_of(&app, "questionnaire_responses", &pa, &by_b).await?, 0, "nothing of A's was entered by B");
        assert_eq!((audited(&app, "questionnaire.submit", &pa).await?, audited(&app, "questionnaire.submit", &pb).await?), (sa, sb + 1));

        // A's assignment was real and is still A's to fill.
        let a_page = a_web.get(&a_form).send().await?;
        assert_eq!(a_page.status(), 200);
        assert!(a_page.text().await?.contains("Little interest or pleasure"));
        let a_csrf = app.csrf_of(&a_web).await?;
        assert_eq!(a_web.post(&a_form).form(&phq9_fields(&a_csrf, &[])).send().await?.status(), 200);
        assert_eq!((responses(&app, &pa).await?, responses(&app, &pb).await?), (ra + 1, rb + 1));
        assert_eq!(open_assignments(&app, &pa).await?, oa);
        assert_eq!(a_web.get(&a_form).send().await?.status(), 404, "completed");
        app.stop().await
    }

    async fn b_signs_consent_only_for_b_and_cannot_sign_as_a(b) {
        let app = TestApp::demo(b).await?;
        let (pa, pb) = two_patients(&app).await?;
        let (a_web, _) = app.browser_login(A, PASSWORD).await?;
        let (b_web, _) = app.browser_login(B, PASSWORD).await?;
        let (ca, cb) = (consents(&app, &pa).await?, consents(&app, &pb).await?);
        let (sa, sb) = (audited(&app, "consent.sign", &pa).await?, audited(&app, "consent.sign", &pb).await?);
        for (who, c) in [("A", &a_web), ("B", &b_web)] {
            let home = c.get(app.url("/portal")).send().await?.text().await?;
            assert!(home.contains("/portal/consents/kap-general"), "{who} has no valid consent yet");
        }

        // A signs first; B's portal and consent page still show B's own, unsigned, state.
        assert_eq!(sign(&app, &a_web, "kap-general", &pa.name, &[]).await?.status(), 303);
        assert_eq!((consents(&app, &pa).await?, consents(&app, &pb).await?), (ca + 1, cb));
        let a_consent = kapstone_store::consents::latest(&app.db, pa.pid(), "kap-general").await?.unwrap();
        let b_home = b_web.get(app.url("/portal")).send().await?.text().await?;
        assert!(b_home.contains("/portal/consents/kap-general"), "B's portal still asks B to sign");
        assert!(!a_web.get(app.url("/portal")).send().await?.text().await?.contains("/portal/consents/kap-general"));
        let b_page = b_web.get(app.url("/portal/consents/kap-general")).send().await?;
        assert_eq!(b_page.status(), 200);
        let b_page = b_page.text().await?;
        assert!(b_page.contains("name=\"signed_name\"") && !b_page.contains("You have signed this consent"));
        no_trace_of(&b_page, &pa, "B's consent page");

        // B types A's name, and names A in extra fields: refused, naming only B's record.
        let extra = [("patient_id", pa.id.as_str()), ("mrn", pa.mrn.as_str())];
        for fields in [&[][..], &extra[..]] {
            let wrong = sign(&app, &b_web, "kap-general", &pa.name, fields).await?;
            assert_eq!(wrong.status(), 422);
            let html = wrong.text().await?;
            assert!(html.contains(&format!("as the clinic has it: {}</p>", pb.name)), "{html}");
            no_trace_of(&html, &pa, "B's refused signature");
        }
        assert_eq!((consents(&app, &pa).await?, consents(&app, &pb).await?), (ca + 1, cb));

        // {id} is the document: A's consent id (or A's patient id) names no document.
        for id in [a_consent.id.to_string(), pa.id.clone()] {
            let url = app.url(&format!("/portal/consents/{id}"));
            assert_eq!(b_web.get(&url).send().await?.status(), 404);
            assert_eq!(sign(&app, &b_web, &id, &pb.name, &[]).await?.status(), 404);
        }
        assert_eq!((consents(&app, &pa).await?, consents(&app, &pb).await?), (ca + 1, cb));

        // B signs with B's name while naming A in extra fields: B's record gets it, A's does not.
        assert_eq!(sign(&app, &b_web, "kap-general", &pb.name, &extra).await?.status(), 303);
        assert_eq!((consents(&app, &pa).await?, consents(&app, &pb).await?), (ca + 1, cb + 1));
        let b_signed = format!("signed_name = '{}' AND method = 'portal'", pb.name);
        assert_eq!(rows_of(&app, "consents", &pb, &b_signed).await?, 1);
        assert_eq!(rows_of(&app, "consents", &pa, &b_signed).await?, 0);
        let a_signed = format!("signed_name = '{}' AND method = 'portal' AND revoked_at IS NULL", pa.name);
        assert_eq!(rows_of(&app, "consents", &pa, &a_signed).await?, 1);
        assert_eq!(
            (audited(&app, "consent.sign", &pa).await?, audited(&app, "consent.sign", &pb).await?),
            (sa + 1, sb + 1)
        );
        let still = kapstone_store::consents::latest(&app.db, pa.pid(), "kap-general").await?.unwrap();
        assert_eq!((still.id, still.signed_name.as_str()), (a_consent.id, pa.name.as_str()), "A's signature untouched");
        let mine = kapstone_store::consents::latest(&app.db, pb.pid(), "kap-general").await?.unwrap();
        assert_eq!(mine.signed_name, pb.name);
        assert!(!b_web.get(app.url("/portal")).send().await?.text().await?.contains("/portal/consents/kap-general"));
        app.stop().await
    }

    async fn the_portal_page_and_me_show_b_only_b(b) {
        let app = TestApp::demo(b).await?;
        let (pa, pb) = two_patients(&app).await?;
        let (b_web, _) = app.browser_login(B, PASSWORD).await?;
        let q = format!("?patient_id={}&id={}&mrn={}", pa.id, pa.id, pa.mrn);
        for path in ["/portal".to_owned(), format!("/portal{q}")] {
            let page = b_web.get(app.url(&path)).send().await?;
            assert_eq!(page.status(), 200);
            let html = page.text().await?;
            assert!(html.contains(&pb.mrn) && html.contains(&pb.name), "{path} shows B's record");
            no_trace_of(&html, &pa, &path);
        }
        for path in ["/api/v1/portal/me".to_owned(), format!("/api/v1/portal/me{q}")] {
            let resp = app.get_bearer(&pb.token, &path).await?;
            assert_eq!(resp.status(), 200);
            let text = resp.text().await?;
            let me: Value = serde_json::from_str(&text)?;
            assert_eq!((me["id"].as_str(), me["mrn"].as_str()), (Some(pb.id.as_str()), Some("K000002")), "{path}");
            assert_eq!(format!("{} {}", me["given_name"].as_str().unwrap(), me["family_name"].as_str().unwrap()), pb.name);
            no_trace_of(&text, &pa, &path);
        }
        // The same through B's browser session.
        let me: Value = b_web.get(app.url("/api/v1/portal/me")).send().await?.json().await?;
        assert_eq!(me["id"].as_str(), Some(pb.id.as_str()));
        app.stop().await
    }

    async fn who_viewed_my_record_lists_only_views_of_my_own_record(b) {
        let app = TestApp::demo(b).await?;
        let (pa, pb) = two_patients(&app).await?;
        let (a_web, _) = app.browser_login(A, PASSWORD).await?;
        let (b_web, _) = app.browser_login(B, PASSWORD).await?;
        let page = |c: &reqwest::Client| {
            let (c, url) = (c.clone(), app.url("/portal"));
            async move { c.get(url).send().await?.text().await }
        };
        let nurse_views = |p: &str| p.matches("Nurse opened your record</li>").count();
        let therapist_views = |p: &str| p.matches("Therapist opened your record</li>").count();
        let (a0, b0) = (page(&a_web).await?, page(&b_web).await?);
        let (va, vb) = (views(&a0), views(&b0));
        let (na, nb, ta, tb) = (nurse_views(&a0), nurse_views(&b0), therapist_views(&a0), therapist_views(&b0));
        // The list shows at most 20 entries; stay clear of the cap.
        assert!(va + 2 < 20 && vb + 1 < 20, "{va} {vb}");

        // The nurse opens A's record twice; B tries to open it as well (refused).
        let nurse = app.token(NURSE).await?;
        for _ in 0..2 {
            assert_eq!(app.get_bearer(&nurse, &format!("/api/v1/patients/{}", pa.id)).await?.status(), 200);
        }
        assert_eq!(app.get_bearer(&pb.token, &format!("/api/v1/patients/{}", pa.id)).await?.status(), 403);
        let a_page = page(&a_web).await?;
        assert_eq!((views(&a_page), nurse_views(&a_page)), (va + 2, na + 2));
        let b_page = page(&b_web).await?;
        assert_eq!((views(&b_page), nurse_views(&b_page)), (vb, nb), "B's list has none of A's views");

        // The therapist opens B's record once: B sees that one, A's list is unchanged.
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&therapist, &format!("/api/v1/patients/{}", pb.id)).await?.status(), 200);
        let b_page = page(&b_web).await?;
        assert_eq!((views(&b_page), therapist_views(&b_page), nurse_views(&b_page)), (vb + 1, tb + 1, nb));
        let a_page = page(&a_web).await?;
        assert_eq!((views(&a_page), therapist_views(&a_page)), (va + 2, ta));
        // The portal API offers no access history of anyone else either.
        no_trace_of(&b_page, &pa, "B's access history");
        app.stop().await
    }

    async fn the_portal_questionnaire_api_stores_for_the_caller_only(b) {
        let app = TestApp::demo(b).await?;
        let (pa, pb) = two_patients(&app).await?;
        let url = app.url("/api/v1/portal/questionnaires");
        let gad7 = json!([1, 1, 1, 1, 1, 1, 1]);
        let (ra, rb) = (responses(&app, &pa).await?, responses(&app, &pb).await?);
        let (sa, sb) = (audited(&app, "questionnaire.submit", &pa).await?, audited(&app, "questionnaire.submit", &pb).await?);
        for (field, value) in [
            ("patient_id", json!(pa.id)),
            ("patient", json!(pa.id)),
            ("id", json!(pa.id)),
            ("mrn", json!(pa.mrn)),
        ] {
            let mut body = json!({"instrument": "gad7", "answers": gad7});
            body[field] = value;
            let resp = app.client().post(&url).bearer_auth(&pb.token).json(&body).send().await?;
            assert_eq!(resp.status(), 400, "{field}");
            let err: Value = resp.json().await?;
            assert_eq!(err["error"]["code"], "bad_request");
            assert!(err["error"]["message"].as_str().unwrap().contains(&format!("unknown field `{field}`")), "{err}");
        }
        // The same through B's browser session (CSRF header): refused too.
        let (b_web, _) = app.browser_login(B, PASSWORD).await?;
        let csrf = app.csrf_of(&b_web).await?;
        let resp = b_web
            .post(&url)
            .header("x-csrf-token", csrf.as_str())
            .json(&json!({"instrument": "gad7", "answers": gad7, "patient_id": pa.id}))
            .send()
            .await?;
        assert_eq!(resp.status(), 400);
        assert_eq!((responses(&app, &pa).await?, responses(&app, &pb).await?), (ra, rb));

        // A query string naming A changes nothing: the response is B's.
        let resp = app
            .client()
            .post(format!("{url}?patient_id={}", pa.id))
            .bearer_auth(&pb.token)
            .json(&json!({"instrument": "gad7", "answers": gad7}))
            .send()
            .await?;
        assert_eq!(resp.status(), 201);
        let r: Value = resp.json().await?;
        assert_eq!(r["total"], 7);
        no_trace_of(&r.to_string(), &pa, "B's stored response");
        let id = uuid_sql(&app, r["id"].as_str().unwrap());
        assert_eq!(rows_of(&app, "questionnaire_responses", &pb, &format!("id = {id}")).await?, 1);
        assert_eq!(rows_of(&app, "questionnaire_responses", &pa, &format!("id = {id}")).await?, 0);
        let cookie = b_web
            .post(&url)
            .header("x-csrf-token", csrf.as_str())
            .json(&json!({"instrument": "gad7", "answers": gad7}))
            .send()
            .await?;
        assert_eq!(cookie.status(), 201);
        assert_eq!((responses(&app, &pa).await?, responses(&app, &pb).await?), (ra, rb + 2));
        assert_eq!((audited(&app, "questionnaire.submit", &pa).await?, audited(&app, "questionnaire.submit", &pb).await?), (sa, sb + 2));

        // And A's own submission goes to A.
        let resp = app.client().post(&url).bearer_auth(&pa.token).json(&json!({"instrument": "gad7", "answers": gad7})).send().await?;
        assert_eq!(resp.status(), 201);
        assert_eq!((responses(&app, &pa).await?, responses(&app, &pb).await?), (ra + 1, rb + 2));
        app.stop().await
    }

    async fn patient_accounts_get_403_on_staff_routes_with_a_real_patients_ids(b) {
        let app = TestApp::demo(b).await?;
        let (pa, pb) = two_patients(&app).await?;
        // A's other real ids: A's account, A's open safety alert (seeded) and A's consent.
        let a_user = app.get_bearer(&pa.token, "/api/v1/auth/me").await?.json::<Value>().await?["id"].as_str().unwrap().to_owned();
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let alerts: Value = app.get_bearer(&therapist, "/api/v1/safety-alerts").await?.json().await?;
        let a_alert = alerts["items"].as_array().unwrap().iter().find(|x| x["patient_id"] == pa.id.as_str()).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (a_web, _) = app.browser_login(A, PASSWORD).await?;
        assert_eq!(sign(&app, &a_web, "kap-general", &pa.name, &[]).await?.status(), 303);
        let a_consent = kapstone_store::consents::latest(&app.db, pa.pid(), "kap-general").await?.unwrap().id.to_string();
        let (b_web, _) = app.browser_login(B, PASSWORD).await?;
        let b_csrf = app.csrf_of(&b_web).await?;
        let a_csrf = app.csrf_of(&a_web).await?;

        let before = a_snapshot(&app, &pa).await?;
        assert!(before[2].1 >= 1, "A's consent counted");
        assert!(before[3].1 >= 1, "A's open alert counted");
        let denied_before = app.count("audit_events WHERE action = 'access.denied'").await?;

        let mut attempts = 0;
        let mut covered = Vec::new();
        for route in routes::table() {
            if route.action == Action::Public || roles_allowed(route.action).contains(&Role::Patient) || !route.path.contains('{') {
                continue;
            }
            let id = if route.path.contains("safety-alerts") {
                &a_alert
            } else if route.path.starts_with("/admin/users") {
                &a_user
            } else {
                &pa.id
            };
            let path = route.path.replace("{id}", id).replace("{consent}", &a_consent);
            let api = path.starts_with("/api/");
            let write = route.method != reqwest::Method::GET;
            // Each patient's bearer token (A on A's own record too), then B's and A's browser sessions.
            for token in [&pb.token, &pa.token] {
                let mut req = app.client().request(route.method.clone(), app.url(&path)).bearer_auth(token);
                if write {
                    req = req.json(&json!({"instrument": "gad7", "answers": [0, 0, 0, 0, 0, 0, 0], "action_taken": "Called the patient"}));
                }
                let resp = req.send().await?;
                assert_eq!(resp.status(), 403, "patient token on {} {path}", route.method);
                no_trace_of(&resp.text().await?, &pa, &format!("{} {path}", route.method));
                attempts += 1;
            }
            for (web, csrf) in [(&b_web, &b_csrf), (&a_web, &a_csrf)] {
                let mut req = web.request(route.method.clone(), app.url(&path));
                if write && api {
                    req = req.header("x-csrf-token", csrf.as_str()).json(&json!({}));
                } else if write {
                    req = req.form(&[("csrf_token", csrf.as_str()), ("instrument", "phq9"), ("reason", "not mine")]);
                }
                let resp = req.send().await?;
                assert_eq!(resp.status(), 403, "patient session on {} {path}", route.method);
                no_trace_of(&resp.text().await?, &pa, &format!("{} {path} (session)", route.method));
                attempts += 1;
            }
            covered.push(format!("{} {}", route.method, route.path));
        }
        for must in [
            "GET /api/v1/patients/{id}",
            "GET /patients/{id}",
            "GET /api/v1/patients/{id}/eligibility",
            "PUT /api/v1/patients/{id}/consultation",
            "POST /patients/{id}/assign",
            "POST /patients/{id}/consents",
            "POST /patients/{id}/consents/{consent}/revoke",
            "POST /api/v1/patients/{id}/questionnaires",
            "POST /api/v1/safety-alerts/{id}/acknowledge",
        ] {
            assert!(covered.iter().any(|c| c == must), "{must} was checked: {covered:?}");
        }
        assert_eq!(a_snapshot(&app, &pa).await?, before, "nothing of A's changed");
        assert_eq!(app.count("audit_events WHERE action = 'access.denied'").await?, denied_before + attempts, "each refusal is audited");
        app.stop().await
    }
}
