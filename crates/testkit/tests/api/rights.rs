//! Issue 7: psychotherapy-note sharing with one named colleague (every role tried), and patients'
//! rights over their record (access within 30 days with one extension, TV-HIP-1; amendment within
//! 60 days, TV-HIP-2; the designated record set without psychotherapy notes, TV-HIP-3), every
//! portal route tried by a second patient.

use jiff::{SignedDuration, Timestamp, ToSpan};
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

const SECRET: &str = "The owl in the orchard RQV-5520";
const MARKER: &str = "RQV-5520";

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(&body).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or(Value::Null)))
}

async fn get(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let r = app.get_bearer(token, path).await?;
    Ok((r.status().as_u16(), r.text().await?))
}

async fn my_id(app: &TestApp, token: &str) -> anyhow::Result<String> {
    let me: Value = app.get_bearer(token, "/api/v1/auth/me").await?.json().await?;
    Ok(me["id"].as_str().unwrap_or_default().to_owned())
}

/// Opens a session on patient 3's next booked dosing appointment; returns (session, patient).
async fn open_session(app: &TestApp) -> anyhow::Result<(String, String)> {
    let patient3 = app.token("patient3@demo.kapstone.test").await?;
    let me: Value = app.get_bearer(&patient3, "/api/v1/portal/me").await?.json().await?;
    let patient = me["id"].as_str().unwrap().to_owned();
    let nurse = app.token("nurse@demo.kapstone.test").await?;
    let now = Timestamp::now();
    let to = now + SignedDuration::from_hours(24 * 30);
    let list: Value =
        app.get_bearer(&nurse, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?.json().await?;
    let appointment = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["patient_id"] == patient.as_str() && a["kind"] == "dosing" && a["status"] == "booked")
        .and_then(|a| a["id"].as_str())
        .expect("a booked dosing session for patient 3")
        .to_owned();
    let (s, opened) = post(app, &nurse, &format!("/api/v1/appointments/{appointment}/session"), json!({})).await?;
    assert_eq!(s, 201, "{opened}");
    Ok((opened["id"].as_str().unwrap().to_owned(), patient))
}

both_backends! {
    async fn a_note_is_shared_with_one_named_colleague_and_nobody_else_reads_it(b) {
        let app = TestApp::demo(b).await?;
        let (session, patient) = open_session(&app).await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let prescriber_id = my_id(&app, &prescriber).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let nurse_id = my_id(&app, &nurse).await?;
        let (s, note) =
            post(&app, &therapist, &format!("/api/v1/sessions/{session}/psychotherapy-notes"), json!({"text": SECRET})).await?;
        assert_eq!(s, 201, "{note}");
        let id = note["id"].as_str().unwrap().to_owned();

        // Before sharing, the prescriber cannot read it.
        let (s, body) = get(&app, &prescriber, &format!("/api/v1/psychotherapy-notes/{id}")).await?;
        assert_eq!(s, 404, "{body}");
        assert!(!body.contains(MARKER));

        // Bad shares: a nurse is not a colleague who keeps these notes; not the author; bad id.
        let share = format!("/api/v1/psychotherapy-notes/{id}/share");
        let (s, e) = post(&app, &therapist, &share, json!({"colleague_id": nurse_id})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("colleague_id")), "{e}");
        let (s, e) = post(&app, &therapist, &share, json!({"colleague_id": "nope"})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("colleague_id")), "{e}");
        let (s, _) = post(&app, &prescriber, &share, json!({"colleague_id": prescriber_id})).await?;
        assert_eq!(s, 404, "only the author shares");

        // The author's page: a refused share is shown next to the form; the share itself redirects.
        let (ct, _) = app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&ct).await?;
        let page_share = app.url(&format!("/psychotherapy-notes/{id}/share"));
        let r = ct.post(&page_share).form(&[("csrf_token", csrf.as_str()), ("colleague_id", nurse_id.as_str())]).send().await?;
        assert_eq!(r.status(), 422);
        assert!(r.text().await?.contains("role=\"alert\""));
        let r = ct.post(&page_share).form(&[("csrf_token", csrf.as_str()), ("colleague_id", prescriber_id.as_str())]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());
        let notes_page = ct.get(app.url(&format!("/sessions/{session}/psychotherapy-note"))).send().await?.text().await?;
        assert!(notes_page.contains("Withdraw the share"), "the author sees the share");
        let r = ct.post(app.url(&format!("/psychotherapy-notes/{id}/unshare"))).form(&[("csrf_token", csrf.as_str())]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());

        let (s, shared) = post(&app, &therapist, &share, json!({"colleague_id": prescriber_id})).await?;
        assert_eq!(s, 201, "{shared}");
        let (s, e) = post(&app, &therapist, &share, json!({"colleague_id": prescriber_id})).await?;
        assert_eq!(s, 409, "one live share: {e}");
        let (s, body) = get(&app, &prescriber, &format!("/api/v1/psychotherapy-notes/{id}")).await?;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains(MARKER));
        let (s, body) = get(&app, &prescriber, "/api/v1/psychotherapy-notes/shared").await?;
        assert_eq!(s, 200);
        assert!(body.contains(&id) && !body.contains(MARKER), "listed by id, no text: {body}");
        // The colleague's page.
        let (c, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let page = c.get(app.url(&format!("/psychotherapy-notes/{id}"))).send().await?;
        assert_eq!(page.status(), 200);
        assert!(page.text().await?.contains(MARKER));
        // The author sees with whom it is shared.
        let (_, mine) = get(&app, &therapist, &format!("/api/v1/sessions/{session}/psychotherapy-notes")).await?;
        let mine: Value = serde_json::from_str(&mine)?;
        assert_eq!(mine["notes"][0]["shared_with"], prescriber_id.as_str());

        // Every other role and account: nothing, from any route.
        for email in [
            "therapist2@demo.kapstone.test",
            "nurse@demo.kapstone.test",
            "admin@demo.kapstone.test",
            "frontdesk@demo.kapstone.test",
            "patient3@demo.kapstone.test",
            "patient1@demo.kapstone.test",
        ] {
            let t = app.token(email).await?;
            for path in [
                format!("/api/v1/psychotherapy-notes/{id}"),
                "/api/v1/psychotherapy-notes/shared".to_owned(),
                format!("/api/v1/sessions/{session}/psychotherapy-notes"),
                format!("/api/v1/sessions/{session}"),
                format!("/api/v1/patients/{patient}"),
                "/api/v1/portal/me".to_owned(),
            ] {
                let (_, body) = get(&app, &t, &path).await?;
                assert!(!body.contains(MARKER), "{email} {path}: {body}");
            }
            let (s, _) = get(&app, &t, &format!("/api/v1/psychotherapy-notes/{id}")).await?;
            assert!(s == 403 || s == 404, "{email}: {s}");
            let (c, _) = app.browser_login(email, PASSWORD).await?;
            let page = c.get(app.url(&format!("/psychotherapy-notes/{id}"))).send().await?;
            assert!(page.status() == 403 || page.status() == 404, "{email} page: {}", page.status());
            assert!(!page.text().await?.contains(MARKER));
        }

        // The record-set export never holds it (TV-HIP-3).
        let (s, req) = post(&app, &nurse, &format!("/api/v1/patients/{patient}/record-requests"), json!({"kind": "access"})).await?;
        assert_eq!(s, 201, "{req}");
        let rid = req["id"].as_str().unwrap().to_owned();
        let (s, _) = post(&app, &nurse, &format!("/api/v1/record-requests/{rid}/steps"), json!({"step": "provide"})).await?;
        assert_eq!(s, 200);
        let (s, body) = get(&app, &nurse, &format!("/api/v1/record-requests/{rid}/export")).await?;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains(&session) && !body.contains(MARKER), "the session is in, the note is not");
        let patient3 = app.token("patient3@demo.kapstone.test").await?;
        let (s, body) = get(&app, &patient3, &format!("/api/v1/portal/record-requests/{rid}/export")).await?;
        assert_eq!(s, 200, "{body}");
        assert!(!body.contains(MARKER));

        // Withdrawn: the colleague reads nothing again.
        let r = app.client().delete(app.url(&share)).bearer_auth(&therapist).send().await?;
        assert_eq!(r.status(), 204);
        let (s, body) = get(&app, &prescriber, &format!("/api/v1/psychotherapy-notes/{id}")).await?;
        assert_eq!(s, 404, "{body}");
        let r = app.client().delete(app.url(&share)).bearer_auth(&therapist).send().await?;
        assert_eq!(r.status(), 404, "nothing left to withdraw");

        // Audited with ids only.
        assert_eq!(app.count("audit_events WHERE action = 'psychotherapy_note.share'").await?, 2);
        assert_eq!(app.count("audit_events WHERE action = 'psychotherapy_note.unshare'").await?, 2);
        assert!(app.count("audit_events WHERE action = 'psychotherapy_note.read_shared'").await? >= 2);
        assert_eq!(app.count(&format!("audit_events WHERE reason LIKE '%{MARKER}%'")).await?, 0);
        Ok(())
    }

    async fn access_and_amendment_requests_run_against_their_deadlines_and_stay_the_patients_own(b) {
        let app = TestApp::demo(b).await?;
        let p1 = app.token("patient1@demo.kapstone.test").await?;
        let p2 = app.token("patient2@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;

        let (s, e) = post(&app, &p1, "/api/v1/portal/record-requests", json!({"kind": "copy"})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("kind")), "{e}");
        let (s, e) = post(&app, &p1, "/api/v1/portal/record-requests", json!({"kind": "access", "received_on": "2020-01-01"})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("received_on")), "a patient does not backdate: {e}");
        let (s, access) = post(&app, &p1, "/api/v1/portal/record-requests", json!({"kind": "access"})).await?;
        assert_eq!(s, 201, "{access}");
        let aid = access["id"].as_str().unwrap().to_owned();
        let received: jiff::civil::Date = access["received_on"].as_str().unwrap().parse()?;
        assert_eq!(access["due"], (received + 30.days()).to_string(), "TV-HIP-1: 30 days");
        assert_eq!(access["status"], "open");
        assert_eq!(access["via"], "portal");

        // Patient 2 reaches none of it.
        let (_, list2) = get(&app, &p2, "/api/v1/portal/record-requests").await?;
        assert!(!list2.contains(&aid), "{list2}");
        let (s, _) = get(&app, &p2, &format!("/api/v1/portal/record-requests/{aid}/export")).await?;
        assert_eq!(s, 404);
        let (s, _) = post(&app, &p2, &format!("/api/v1/portal/record-requests/{aid}/steps"), json!({"step": "disagree", "text": "x"})).await?;
        assert_eq!(s, 404);
        // Nor do patients reach the staff routes.
        for t in [&p1, &p2] {
            let (s, _) = get(&app, t, "/api/v1/record-requests").await?;
            assert_eq!(s, 403);
            let (s, _) = get(&app, t, &format!("/api/v1/record-requests/{aid}/export")).await?;
            assert_eq!(s, 403);
        }
        let (s, _) = get(&app, &front, "/api/v1/record-requests").await?;
        assert_eq!(s, 403, "the front desk does not handle record requests");

        // Not ready before the clinic provides it.
        let (s, e) = get(&app, &p1, &format!("/api/v1/portal/record-requests/{aid}/export")).await?;
        assert_eq!(s, 422, "{e}");

        // Staff see it with its deadline; one extension with a written reason.
        let (s, open) = get(&app, &nurse, "/api/v1/record-requests").await?;
        assert_eq!(s, 200);
        assert!(open.contains(&aid));
        let steps = format!("/api/v1/record-requests/{aid}/steps");
        let (s, e) = post(&app, &nurse, &steps, json!({"step": "extend", "reason": "  "})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("reason")), "{e}");
        let (s, ext) = post(&app, &nurse, &steps, json!({"step": "extend", "reason": "Records in off-site storage"})).await?;
        assert_eq!(s, 200, "{ext}");
        assert_eq!(ext["due"], (received + 60.days()).to_string(), "TV-HIP-1: one extension to 60 days");
        let (s, e) = post(&app, &nurse, &steps, json!({"step": "extend", "reason": "again"})).await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("state")), "only one extension: {e}");
        let (s, e) = post(&app, &nurse, &steps, json!({"step": "accept", "records": []})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("step")), "not a step of an access request: {e}");
        let (s, done) = post(&app, &nurse, &steps, json!({"step": "provide"})).await?;
        assert_eq!(s, 200, "{done}");
        assert_eq!((done["status"].as_str(), done["outcome"].as_str()), (Some("answered"), Some("provided")));

        // The patient's copy: JSON and a printable page; patient 2 gets neither.
        let (s, body) = get(&app, &p1, &format!("/api/v1/portal/record-requests/{aid}/export")).await?;
        assert_eq!(s, 200, "{body}");
        let x: Value = serde_json::from_str(&body)?;
        assert!(x["demographics"]["mrn"].is_string(), "{x}");
        let keys: Vec<&str> = x["sections"].as_array().unwrap().iter().filter_map(|s| s["key"].as_str()).collect();
        for k in ["consultation", "eligibility", "consents", "questionnaires", "appointments", "sessions", "rems"] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert!(x["excluded"][0].as_str().unwrap().contains("psychotherapy notes"));
        let (c1, _) = app.browser_login("patient1@demo.kapstone.test", PASSWORD).await?;
        let page = c1.get(app.url(&format!("/portal/records/{aid}/export"))).send().await?;
        assert_eq!(page.status(), 200);
        assert!(page.text().await?.contains("Demographics"));
        let (c2, _) = app.browser_login("patient2@demo.kapstone.test", PASSWORD).await?;
        let page = c2.get(app.url(&format!("/portal/records/{aid}/export"))).send().await?;
        assert_eq!(page.status(), 404);
        let page = c2.get(app.url("/portal/records")).send().await?;
        assert_eq!(page.status(), 200);
        assert!(!page.text().await?.contains(&aid), "patient 2's page lists only their own");
        let page = c1.get(app.url("/portal/records")).send().await?;
        assert!(page.text().await?.contains(&aid));

        // Amendment: 60 days, denied with a basis, disagreement and rebuttal linked.
        let (s, e) = post(&app, &p1, "/api/v1/portal/record-requests", json!({"kind": "amendment", "requested": ""})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("requested")), "{e}");
        let (s, am) = post(&app, &p1, "/api/v1/portal/record-requests", json!({"kind": "amendment", "requested": "My birth date is wrong"})).await?;
        assert_eq!(s, 201, "{am}");
        let mid = am["id"].as_str().unwrap().to_owned();
        assert_eq!(am["due"], (received + 60.days()).to_string(), "TV-HIP-2: 60 days");
        let (s, e) = post(&app, &p1, &format!("/api/v1/portal/record-requests/{mid}/steps"), json!({"step": "disagree", "text": "No"})).await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("state")), "nothing to disagree with yet: {e}");
        let msteps = format!("/api/v1/record-requests/{mid}/steps");
        let (s, _) = post(&app, &nurse, &msteps, json!({"step": "deny", "basis": "The date matches the ID seen at intake"})).await?;
        assert_eq!(s, 200);
        let (s, _) = post(&app, &p2, &format!("/api/v1/portal/record-requests/{mid}/steps"), json!({"step": "disagree", "text": "x"})).await?;
        assert_eq!(s, 404, "patient 2 cannot file on patient 1's request");
        let (s, d) = post(&app, &p1, &format!("/api/v1/portal/record-requests/{mid}/steps"), json!({"step": "disagree", "text": "I was born a day later"})).await?;
        assert_eq!(s, 200, "{d}");
        let (s, e) = post(&app, &p1, &format!("/api/v1/portal/record-requests/{mid}/steps"), json!({"step": "provide"})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("step")), "a patient only disagrees: {e}");
        let (s, r) = post(&app, &nurse, &msteps, json!({"step": "rebut", "text": "The intake ID shows the recorded date"})).await?;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["outcome"], "denied");
        assert_eq!(r["disagreement"]["text"], "I was born a day later");
        assert_eq!(r["rebuttal"]["text"], "The intake ID shows the recorded date");
        assert_eq!(r["travels_with_disclosures"], true);
        let (_, mine) = get(&app, &p1, "/api/v1/portal/record-requests").await?;
        assert!(mine.contains("The intake ID shows the recorded date"), "the patient sees the rebuttal");

        // The portal's forms: patient 2 cannot file on patient 1's request; patient 1 asks again.
        let csrf2 = app.csrf_of(&c2).await?;
        let r = c2
            .post(app.url(&format!("/portal/records/{mid}")))
            .form(&[("csrf_token", csrf2.as_str()), ("text", "not mine")])
            .send()
            .await?;
        assert_eq!(r.status(), 404);
        let csrf1 = app.csrf_of(&c1).await?;
        let r = c1
            .post(app.url("/portal/records"))
            .form(&[("csrf_token", csrf1.as_str()), ("kind", "amendment"), ("requested", "")])
            .send()
            .await?;
        assert_eq!(r.status(), 422, "an empty request is refused on the page");
        assert!(r.text().await?.contains("role=\"alert\""));
        let r = c1.post(app.url("/portal/records")).form(&[("csrf_token", csrf1.as_str()), ("kind", "access")]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());
        assert_eq!(app.count("record_requests").await?, 3);
        // Staff pages: clinicians see the open list; the front desk does not.
        let (cn, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let page = cn.get(app.url("/record-requests")).send().await?;
        assert_eq!(page.status(), 200);
        assert!(page.text().await?.contains("Copy of the record"));
        let (cf, _) = app.browser_login("frontdesk@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(cf.get(app.url("/record-requests")).send().await?.status(), 403);

        // Audited, with ids and kinds only.
        assert_eq!(app.count("audit_events WHERE action = 'record_request.receive'").await?, 3);
        assert!(app.count("audit_events WHERE action = 'record.export'").await? >= 2);
        assert_eq!(app.count("audit_events WHERE reason LIKE '%born a day later%'").await?, 0);
        Ok(())
    }

    async fn who_viewed_my_record_shows_role_and_time_never_ids(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let nurse_id = my_id(&app, &nurse).await?;
        let p1 = app.token("patient1@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&p1, "/api/v1/portal/me").await?.json().await?;
        let patient = me["id"].as_str().unwrap().to_owned();
        let (s, _) = get(&app, &nurse, &format!("/api/v1/patients/{patient}")).await?;
        assert_eq!(s, 200);
        let (c1, _) = app.browser_login("patient1@demo.kapstone.test", PASSWORD).await?;
        let page = c1.get(app.url("/portal")).send().await?.text().await?;
        assert!(page.contains("Nurse opened your record"), "role shown");
        assert!(page.contains(" UTC"), "time shown");
        assert!(!page.contains(&nurse_id), "never the staff member's id");
        assert!(page.contains("href=\"/portal/records\""), "the way to ask for a copy or a correction");
        Ok(())
    }
}

both_backends! {
    async fn the_notes_shared_with_a_colleague_page_newest_first(b) {
        let app = TestApp::demo(b).await?;
        let (session, patient) = open_session(&app).await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let prescriber_id = my_id(&app, &prescriber).await?;
        for n in 0..3 {
            let path = format!("/api/v1/sessions/{session}/psychotherapy-notes");
            let (s, note) = post(&app, &therapist, &path, json!({"text": format!("{SECRET} {n}")})).await?;
            assert_eq!(s, 201, "{note}");
            let id = note["id"].as_str().unwrap().to_owned();
            let share = format!("/api/v1/psychotherapy-notes/{id}/share");
            let (s, e) = post(&app, &therapist, &share, json!({"colleague_id": prescriber_id})).await?;
            assert_eq!(s, 201, "{e}");
        }
        let path = "/api/v1/psychotherapy-notes/shared";
        let items = app.walk_pages(&prescriber, path, 2).await?;
        let ids = app.walk_ids(&prescriber, path, 1, "note_id").await?;
        assert_eq!((items.len(), ids.len()), (3, 3), "{items:?}");
        let times: Vec<&str> = items.iter().filter_map(|i| i["shared_at"].as_str()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
        assert!(!serde_json::to_string(&items)?.contains(MARKER), "ids only");
        assert_eq!(app.walk_pages(&prescriber, &format!("{path}?patient={patient}"), 2).await?.len(), 3);
        assert_eq!(app.walk_pages(&therapist, path, 2).await?.len(), 0, "nothing is shared with the author");
        app.refuses_bad_paging(&prescriber, path).await?;
        app.stop().await
    }
}
