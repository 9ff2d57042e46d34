//! Integration notes (KAP-SPEC 2.1 stage 7, TV-HIP-4) and the patient journal (issue 7): drafts
//! are their author's, a signed note is only amended, the patient's note list never carries a
//! psychotherapy note for any role, journal entries are private until shared, a shared entry waits
//! unread in the care team's queue until read, and no portal route reaches another patient's entry.

use jiff::{SignedDuration, Timestamp};
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

/// Phrases that appear nowhere else, so finding one in a response or the audit log is a leak.
const NOTE: &str = "Integration summary QMW-3301";
const DRAFT: &str = "Unsigned draft DRF-8804";
const PSYCHO: &str = "Private psychotherapy note PSN-6620";
const ENTRY: &str = "Journal entry JRN-4417 about the tide";

struct Fx {
    app: TestApp,
    /// A dosing session of demo patient 3, opened for the tests.
    session: String,
    appointment: String,
    patient3_id: String,
    therapist: String,
    therapist2: String,
    prescriber: String,
    nurse: String,
    admin: String,
    front: String,
    patient1: String,
    patient2: String,
    patient3: String,
}

impl Fx {
    async fn new(b: TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::demo(b).await?;
        let patient3 = app.token("patient3@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&patient3, "/api/v1/portal/me").await?.json().await?;
        let patient3_id = me["id"].as_str().unwrap().to_owned();
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let now = Timestamp::now();
        let to = now + SignedDuration::from_hours(24 * 30);
        let list: Value =
            app.get_bearer(&nurse, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?.json().await?;
        let appointment = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["patient_id"] == patient3_id.as_str() && a["kind"] == "dosing" && a["status"] == "booked")
            .and_then(|a| a["id"].as_str())
            .expect("a booked dosing session for patient 3")
            .to_owned();
        let r = app
            .client()
            .post(app.url(&format!("/api/v1/appointments/{appointment}/session")))
            .bearer_auth(&nurse)
            .send()
            .await?;
        assert_eq!(r.status(), 201);
        let opened: Value = r.json().await?;
        Ok(Self {
            session: opened["id"].as_str().unwrap().to_owned(),
            appointment,
            patient3_id,
            therapist: app.token("therapist@demo.kapstone.test").await?,
            therapist2: app.token("therapist2@demo.kapstone.test").await?,
            prescriber: app.token("prescriber@demo.kapstone.test").await?,
            admin: app.token("admin@demo.kapstone.test").await?,
            front: app.token("frontdesk@demo.kapstone.test").await?,
            patient1: app.token("patient1@demo.kapstone.test").await?,
            patient2: app.token("patient2@demo.kapstone.test").await?,
            nurse,
            patient3,
            app,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self.app.client().request(method, self.app.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::POST, token, path, Some(body)).await
    }

    async fn get(&self, token: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let r = self.app.get_bearer(token, path).await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    async fn draft(&self, token: &str, summary: &str) -> anyhow::Result<(u16, Value)> {
        self.post(
            token,
            &format!("/api/v1/sessions/{}/integration-notes", self.session),
            json!({"summary": summary, "plan": "Next dosing as booked"}),
        )
        .await
    }

    async fn signed_in(&self, email: &str) -> anyhow::Result<(reqwest::Client, String)> {
        let (c, r) = self.app.browser_login(email, PASSWORD).await?;
        anyhow::ensure!(r.status().is_redirection(), "sign-in of {email}: {}", r.status());
        let csrf = self.app.csrf_of(&c).await?;
        Ok((c, csrf))
    }

    async fn write_entry(&self, token: &str, text: &str) -> anyhow::Result<String> {
        let (s, e) = self.post(token, "/api/v1/portal/journal", json!({"text": text})).await?;
        anyhow::ensure!(s == 201, "write: {s} {e}");
        Ok(e["id"].as_str().unwrap().to_owned())
    }
}

both_backends! {
    async fn signing_an_integration_note_needs_a_recent_password_entry(b) {
        let fx = Fx::new(b).await?;
        let (s, note) = fx.draft(&fx.therapist, NOTE).await?;
        assert_eq!(s, 201, "{note}");
        let id = note["id"].as_str().unwrap().to_owned();
        let sign = format!("/api/v1/integration-notes/{id}/sign");
        fx.app.age_authentication().await?;
        // Without re-authentication: refused, naming the password, and the note stays a draft.
        let (s, e) = fx.post(&fx.therapist, &sign, json!({})).await?;
        assert_eq!((s, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (422, Some("reauth_required"), Some("password")), "{e}");
        let (s, wrong) = fx.post(&fx.therapist, "/api/v1/auth/reauth", json!({"password": "not my password"})).await?;
        assert_eq!((s, wrong["error"]["field"].as_str()), (422, Some("password")), "{wrong}");
        let (s, _) = fx.post(&fx.therapist, &sign, json!({})).await?;
        assert_eq!(s, 422);
        let (_, body) = fx.get(&fx.therapist, &format!("/api/v1/patients/{}/notes", fx.patient3_id)).await?;
        assert!(!body.contains("\"signed\""), "still a draft: {body}");
        // With it: signed.
        let (s, ok) = fx.post(&fx.therapist, "/api/v1/auth/reauth", json!({"password": PASSWORD})).await?;
        assert_eq!(s, 200, "{ok}");
        let (s, signed) = fx.post(&fx.therapist, &sign, json!({})).await?;
        assert_eq!((s, signed["status"].as_str()), (200, Some("signed")), "{signed}");
        Ok(())
    }

    async fn an_integration_note_is_drafted_by_its_author_signed_and_then_only_amended(b) {
        let fx = Fx::new(b).await?;
        let (s, e) = fx.draft(&fx.therapist, "   ").await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("summary")), "{e}");
        let (s, e) = fx.draft(&fx.nurse, NOTE).await?;
        assert_eq!(s, 403, "only therapists write integration notes: {e}");
        let (s, note) = fx.draft(&fx.therapist, "First go").await?;
        assert_eq!(s, 201, "{note}");
        assert_eq!((note["status"].as_str(), note["session_id"].as_str()), (Some("draft"), Some(fx.session.as_str())));
        assert_eq!(note["patient_id"], fx.patient3_id.as_str());
        let id = note["id"].as_str().unwrap().to_owned();
        let note_path = format!("/api/v1/integration-notes/{id}");
        let put = |token: String, summary: &'static str| {
            let path = note_path.clone();
            let fx = &fx;
            async move { fx.send(reqwest::Method::PUT, &token, &path, Some(json!({"summary": summary}))).await }
        };
        let (s, edited) = put(fx.therapist.clone(), NOTE).await?;
        assert_eq!((s, edited["summary"].as_str()), (200, Some(NOTE)), "{edited}");
        // Another therapist neither edits nor signs someone else's draft: it is not found.
        let (s, _) = put(fx.therapist2.clone(), "Mine now").await?;
        assert_eq!(s, 404);
        let (s, _) = fx.post(&fx.therapist2, &format!("/api/v1/integration-notes/{id}/sign"), json!({})).await?;
        assert_eq!(s, 404);
        let (s, signed) = fx.post(&fx.therapist, &format!("/api/v1/integration-notes/{id}/sign"), json!({})).await?;
        assert_eq!((s, signed["status"].as_str()), (200, Some("signed")), "{signed}");
        // TV-HIP-4: no in-place edit of a signed note, not even by its author.
        let (s, e) = put(fx.therapist.clone(), "Rewritten").await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("signed_note_immutable")), "{e}");
        let amend = format!("/api/v1/integration-notes/{id}/amendments");
        let (s, e) = fx.post(&fx.therapist2, &amend, json!({"summary": "Corrected", "reason": " "})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("reason")), "{e}");
        let (s, e) = fx.post(&fx.therapist2, &amend, json!({"summary": NOTE, "reason": "Same"})).await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("state")), "an unchanged text is no amendment: {e}");
        let (s, amended) =
            fx.post(&fx.therapist2, &amend, json!({"summary": "Corrected summary", "reason": "Wrong dose mentioned"})).await?;
        assert_eq!(s, 201, "{amended}");
        assert_eq!(amended["status"], "amended");
        assert_eq!(amended["summary"], NOTE, "the original is kept: {amended}");
        assert_eq!(amended["current"]["summary"], "Corrected summary");
        assert_eq!(amended["amendments"][0]["reason"], "Wrong dose mentioned");
        assert!(amended["amendments"][0]["author_id"].is_string(), "{amended}");
        let (s, e) = fx.post(&fx.nurse, &amend, json!({"summary": "x", "reason": "y"})).await?;
        assert_eq!(s, 403, "{e}");

        // Even with database access, a signed note and its amendments do not change.
        assert!(fx.app.raw_sql("UPDATE integration_notes SET summary = 'x' WHERE signed_at IS NOT NULL").await.is_err());
        assert!(fx.app.raw_sql("DELETE FROM integration_notes WHERE signed_at IS NOT NULL").await.is_err());
        assert!(fx.app.raw_sql("UPDATE integration_note_amendments SET reason = 'x'").await.is_err());
        assert_eq!(fx.app.count(&format!("integration_notes WHERE summary = '{NOTE}'")).await?, 1);

        assert!(fx.app.count("audit_events WHERE action = 'integration_note.draft'").await? >= 2);
        assert!(fx.app.count("audit_events WHERE action = 'integration_note.sign'").await? >= 1);
        assert!(fx.app.count("audit_events WHERE action = 'integration_note.amend'").await? >= 1);
        assert_eq!(
            fx.app.count("audit_events WHERE reason LIKE '%QMW%' OR reason LIKE '%Corrected%' OR reason LIKE '%Wrong dose%'").await?,
            0,
            "no note text in the audit log"
        );
        fx.app.stop().await
    }

    async fn the_patient_notes_list_never_includes_psychotherapy_notes_for_any_role(b) {
        let fx = Fx::new(b).await?;
        let (s, n) = fx.draft(&fx.therapist, NOTE).await?;
        assert_eq!(s, 201, "{n}");
        let id = n["id"].as_str().unwrap();
        let (s, _) = fx.post(&fx.therapist, &format!("/api/v1/integration-notes/{id}/sign"), json!({})).await?;
        assert_eq!(s, 200);
        let (s, _) = fx.draft(&fx.therapist, DRAFT).await?;
        assert_eq!(s, 201);
        for token in [&fx.therapist, &fx.prescriber] {
            let (s, _) = fx
                .post(token, &format!("/api/v1/sessions/{}/psychotherapy-notes", fx.session), json!({"text": PSYCHO}))
                .await?;
            assert_eq!(s, 201);
        }
        let path = format!("/api/v1/patients/{}/notes", fx.patient3_id);
        // The author: signed notes and their own draft; never a psychotherapy note, not even their own.
        let (s, body) = fx.get(&fx.therapist, &path).await?;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains(NOTE) && body.contains(DRAFT) && !body.contains("PSN-6620"), "{body}");
        let list: Value = serde_json::from_str(&body)?;
        assert!(list["items"].as_array().unwrap().iter().all(|n| n["kind"] == "integration_note"), "{list}");
        // The rest of the care team: signed notes only.
        for (who, token) in [("therapist2", &fx.therapist2), ("prescriber", &fx.prescriber), ("nurse", &fx.nurse)] {
            let (s, body) = fx.get(token, &path).await?;
            assert_eq!(s, 200, "{who}: {body}");
            assert!(body.contains(NOTE), "{who}: {body}");
            assert!(!body.contains("DRF-8804"), "{who} reads no one else's draft: {body}");
            assert!(!body.contains("PSN-6620"), "{who}: {body}");
            assert_eq!(serde_json::from_str::<Value>(&body)?["items"].as_array().unwrap().len(), 1, "{who}");
        }
        // No treatment role, no note.
        for (who, token) in [("admin", &fx.admin), ("frontdesk", &fx.front), ("patient3", &fx.patient3), ("patient1", &fx.patient1)] {
            let (s, body) = fx.get(token, &path).await?;
            assert_eq!(s, 403, "{who}: {body}");
            assert!(!body.contains("QMW-3301") && !body.contains("PSN-6620") && !body.contains("DRF-8804"), "{who}: {body}");
        }
        let (s, _) = fx.get(&fx.therapist, "/api/v1/patients/01a21565-0000-7000-8000-000000000000/notes").await?;
        assert_eq!(s, 404);
        assert!(fx.app.count("audit_events WHERE action = 'integration_note.read'").await? >= 4);
        fx.app.stop().await
    }

    async fn the_note_page_shows_intention_session_and_shared_entries_and_takes_the_forms(b) {
        let fx = Fx::new(b).await?;
        // Patient 3 writes an intention for the session and shares a journal entry linked to it.
        let (pc, pcsrf) = fx.signed_in("patient3@demo.kapstone.test").await?;
        let r = pc
            .post(fx.app.url(&format!("/portal/appointments/{}/intention", fx.appointment)))
            .form(&[("csrf_token", pcsrf.as_str()), ("intention", "To meet my grief with kindness INT-2290")])
            .send()
            .await?;
        assert!(r.status().is_redirection(), "intention: {}", r.status());
        let (s, e) = fx.post(&fx.patient3, "/api/v1/portal/journal", json!({"text": ENTRY, "session_id": fx.session})).await?;
        assert_eq!(s, 201, "{e}");
        let entry = e["id"].as_str().unwrap().to_owned();
        let (s, _) = fx.post(&fx.patient3, &format!("/api/v1/portal/journal/{entry}/share"), json!({})).await?;
        assert_eq!(s, 200);
        let private = fx.write_entry(&fx.patient3, "Private thought PRV-1180").await?;

        let (c, csrf) = fx.signed_in("therapist@demo.kapstone.test").await?;
        let session_page = c.get(fx.app.url(&format!("/sessions/{}", fx.session))).send().await?.text().await?;
        assert!(session_page.contains(&format!("/sessions/{}/integration-note", fx.session)), "linked from the session page");
        let chart = c.get(fx.app.url(&format!("/patients/{}", fx.patient3_id))).send().await?.text().await?;
        assert!(chart.contains(&format!("/sessions/{}/integration-note", fx.session)), "linked from the chart");
        let url = fx.app.url(&format!("/sessions/{}/integration-note", fx.session));
        let page = c.get(&url).send().await?.text().await?;
        assert!(page.contains("INT-2290"), "the intention is in view");
        assert!(page.contains("JRN-4417"), "the shared entry is in view");
        assert!(!page.contains("PRV-1180"), "a private entry never is");
        assert!(page.contains("Protocol"), "the session summary is in view");
        // Seen on the page: read, out of the queue.
        let (_, queue) = fx.get(&fx.therapist, "/api/v1/journal/queue").await?;
        assert!(!queue.contains(&entry), "{queue}");
        let _ = private;

        let r = c.post(&url).form(&[("csrf_token", csrf.as_str()), ("op", "draft"), ("summary", " "), ("plan", "")]).send().await?;
        assert_eq!(r.status(), 422);
        let body = r.text().await?;
        assert!(body.contains("role=\"alert\"") && body.contains("(summary)"), "{body}");
        let r = c.post(&url).form(&[("csrf_token", csrf.as_str()), ("op", "draft"), ("summary", NOTE), ("plan", "")]).send().await?;
        assert_eq!(r.status(), 303);
        let (_, list) = fx.get(&fx.therapist, &format!("/api/v1/patients/{}/notes", fx.patient3_id)).await?;
        let list: Value = serde_json::from_str(&list)?;
        let id = list["items"][0]["id"].as_str().unwrap().to_owned();
        let r = c.post(&url).form(&[("csrf_token", csrf.as_str()), ("op", "sign"), ("note", id.as_str())]).send().await?;
        assert_eq!(r.status(), 303);
        let r = c
            .post(&url)
            .form(&[("csrf_token", csrf.as_str()), ("op", "edit"), ("note", id.as_str()), ("summary", "Changed")])
            .send()
            .await?;
        assert_eq!(r.status(), 422, "a signed note is not edited from the page either");
        let r = c
            .post(&url)
            .form(&[("csrf_token", csrf.as_str()), ("op", "amend"), ("note", id.as_str()), ("summary", "Amended text AMD-7"), ("reason", "Clarified")])
            .send()
            .await?;
        assert_eq!(r.status(), 303);
        let page = c.get(&url).send().await?.text().await?;
        assert!(page.contains("QMW-3301") && page.contains("AMD-7") && page.contains("Clarified"), "{page}");
        // A nurse reads the page but gets no form to write.
        let (nc, _) = fx.signed_in("nurse@demo.kapstone.test").await?;
        let page = nc.get(&url).send().await?.text().await?;
        assert!(page.contains("QMW-3301") && !page.contains("value=\"draft\""), "{page}");
        fx.app.stop().await
    }

    async fn a_journal_entry_is_private_until_shared_and_waits_unread_until_read(b) {
        let fx = Fx::new(b).await?;
        let id = fx.write_entry(&fx.patient1, ENTRY).await?;
        let read_path = format!("/api/v1/journal/{id}");
        for token in [&fx.therapist, &fx.prescriber, &fx.nurse] {
            let (s, body) = fx.get(token, &read_path).await?;
            assert_eq!(s, 404, "a private entry is never shown to staff: {body}");
        }
        let (_, queue) = fx.get(&fx.therapist, "/api/v1/journal/queue").await?;
        assert!(!queue.contains(&id), "{queue}");
        let share = format!("/api/v1/portal/journal/{id}/share");
        let unshare = format!("/api/v1/portal/journal/{id}/unshare");
        let (s, e) = fx.post(&fx.patient1, &unshare, json!({})).await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("state")), "{e}");
        let (s, shared) = fx.post(&fx.patient1, &share, json!({})).await?;
        assert_eq!((s, shared["shared"].as_bool(), shared["withdrawable"].as_bool()), (200, Some(true), Some(true)), "{shared}");
        let (_, queue) = fx.get(&fx.therapist, "/api/v1/journal/queue").await?;
        assert!(queue.contains(&id) && !queue.contains("JRN-4417"), "in the queue, ids only: {queue}");
        let (c, _) = fx.signed_in("therapist@demo.kapstone.test").await?;
        let home = c.get(fx.app.url("/")).send().await?.text().await?;
        assert!(home.contains("href=\"/journal\""), "what is due next names the queue: {home}");
        // Withdrawn before anyone read it: out of the queue again; shared again: frozen.
        let (s, _) = fx.post(&fx.patient1, &unshare, json!({})).await?;
        assert_eq!(s, 200);
        let (_, queue) = fx.get(&fx.therapist, "/api/v1/journal/queue").await?;
        assert!(!queue.contains(&id), "{queue}");
        let (s, _) = fx.post(&fx.patient1, &share, json!({})).await?;
        assert_eq!(s, 200);
        let (s, e) = fx.send(reqwest::Method::PUT, &fx.patient1, &format!("/api/v1/portal/journal/{id}"), Some(json!({"text": "Changed"}))).await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("state")), "{e}");
        let (s, _) = fx.send(reqwest::Method::DELETE, &fx.patient1, &format!("/api/v1/portal/journal/{id}"), None).await?;
        assert_eq!(s, 422, "a shared entry is kept");
        for token in [&fx.admin, &fx.front] {
            let (s, body) = fx.get(token, &read_path).await?;
            assert_eq!(s, 403, "{body}");
        }
        // The queue page lists it; reading it marks it read and it stays shared.
        let queue_page = c.get(fx.app.url("/journal")).send().await?.text().await?;
        assert!(queue_page.contains(&format!("/journal/{id}")), "{queue_page}");
        let page = c.get(fx.app.url(&format!("/journal/{id}"))).send().await?.text().await?;
        assert!(page.contains("JRN-4417"), "{page}");
        let (_, queue) = fx.get(&fx.therapist, "/api/v1/journal/queue").await?;
        assert!(!queue.contains(&id), "read: out of the queue: {queue}");
        let (s, body) = fx.get(&fx.nurse, &read_path).await?;
        assert!(s == 200 && body.contains("JRN-4417"), "{body}");
        let (s, e) = fx.post(&fx.patient1, &unshare, json!({})).await?;
        assert_eq!((s, e["error"]["code"].as_str()), (422, Some("state")), "read: it stays shared: {e}");
        let (_, own) = fx.get(&fx.patient1, "/api/v1/portal/journal").await?;
        let own: Value = serde_json::from_str(&own)?;
        let mine = own["items"].as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).unwrap().clone();
        assert!(mine["read_at"].is_string() && mine["withdrawable"] == false, "{mine}");
        // Even with database access the shared text and the read stay.
        assert!(fx.app.raw_sql("UPDATE journal_entries SET body = 'x' WHERE shared_at IS NOT NULL").await.is_err());
        assert!(fx.app.raw_sql("UPDATE journal_entries SET shared_at = NULL WHERE first_read_at IS NOT NULL").await.is_err());
        assert!(fx.app.raw_sql("DELETE FROM journal_entries WHERE shared_at IS NOT NULL").await.is_err());
        assert_eq!(fx.app.count("audit_events WHERE reason LIKE '%JRN%' OR reason LIKE '%tide%'").await?, 0, "no journal text in the audit log");
        assert!(fx.app.count("audit_events WHERE action = 'journal.share'").await? >= 3);
        assert!(fx.app.count("audit_events WHERE action = 'journal.read' AND actor_role = 'therapist'").await? >= 1);
        fx.app.stop().await
    }

    async fn every_portal_journal_route_keeps_to_the_signed_in_patients_own_entries(b) {
        let fx = Fx::new(b).await?;
        let id = fx.write_entry(&fx.patient1, ENTRY).await?;
        let own_path = format!("/api/v1/portal/journal/{id}");
        // Patient 2 over the API: every route is "not found" for patient 1's entry.
        let (s, _) = fx.send(reqwest::Method::PUT, &fx.patient2, &own_path, Some(json!({"text": "Hijacked"}))).await?;
        assert_eq!(s, 404);
        let (s, _) = fx.send(reqwest::Method::DELETE, &fx.patient2, &own_path, None).await?;
        assert_eq!(s, 404);
        for op in ["share", "unshare"] {
            let (s, _) = fx.post(&fx.patient2, &format!("{own_path}/{op}"), json!({})).await?;
            assert_eq!(s, 404, "{op}");
        }
        let (s, list) = fx.get(&fx.patient2, "/api/v1/portal/journal").await?;
        assert!(s == 200 && !list.contains("JRN-4417") && !list.contains(&id), "{list}");
        // Patient 2 cannot link an entry to another patient's session.
        let (s, e) = fx.post(&fx.patient2, "/api/v1/portal/journal", json!({"text": "Mine", "session_id": fx.session})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("session")), "{e}");
        // Patient 2 in the browser: the page and every form are "not found" too.
        let (c, csrf) = fx.signed_in("patient2@demo.kapstone.test").await?;
        let r = c.get(fx.app.url(&format!("/portal/journal/{id}"))).send().await?;
        assert_eq!(r.status(), 404);
        assert!(!r.text().await?.contains("JRN-4417"));
        for op in ["edit", "share", "unshare", "delete"] {
            let r = c
                .post(fx.app.url(&format!("/portal/journal/{id}")))
                .form(&[("csrf_token", csrf.as_str()), ("op", op), ("text", "Hijacked")])
                .send()
                .await?;
            assert_eq!(r.status(), 404, "{op}");
        }
        let page = c.get(fx.app.url("/portal/journal")).send().await?.text().await?;
        assert!(!page.contains("JRN-4417"), "{page}");
        // Patient 1's entry is as written, private.
        let (_, own) = fx.get(&fx.patient1, "/api/v1/portal/journal").await?;
        let own: Value = serde_json::from_str(&own)?;
        let mine = own["items"].as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).unwrap().clone();
        assert_eq!((mine["text"].as_str(), mine["shared"].as_bool()), (Some(ENTRY), Some(false)), "{mine}");
        // Staff never reach the portal journal.
        let (s, _) = fx.get(&fx.therapist, "/api/v1/portal/journal").await?;
        assert_eq!(s, 403);
        fx.app.stop().await
    }

    async fn journal_pages_give_crisis_resources_say_who_reads_and_name_bad_fields(b) {
        let fx = Fx::new(b).await?;
        let (c, csrf) = fx.signed_in("patient3@demo.kapstone.test").await?;
        let page = c.get(fx.app.url("/portal/journal")).send().await?.text().await?;
        assert!(page.contains("988") && page.contains("care team"), "{page}");
        assert!(!page.contains("After your session"), "no session has ended yet");
        // Once the session has ended, the journal prompts the patient to write about it.
        let session = uuid::Uuid::parse_str(&fx.session)?;
        let id = match fx.app.backend {
            kapstone_store::Backend::Sqlite => format!("X'{}'", session.simple()),
            kapstone_store::Backend::Postgres => format!("'{session}'"),
        };
        let sql = format!("UPDATE dosing_sessions SET state = 'discharged' WHERE id = {id}");
        assert_eq!(fx.app.raw_sql(&sql).await?, 1);
        let (_, own) = fx.get(&fx.patient3, "/api/v1/portal/journal").await?;
        let own: Value = serde_json::from_str(&own)?;
        assert_eq!(own["prompt_session"]["id"], fx.session.as_str(), "{own}");
        let page = c.get(fx.app.url("/portal/journal")).send().await?.text().await?;
        assert!(page.contains("After your session") && page.contains("Name five things"), "{page}");
        let r = c.post(fx.app.url("/portal/journal")).form(&[("csrf_token", csrf.as_str()), ("text", "  ")]).send().await?;
        assert_eq!(r.status(), 422);
        let body = r.text().await?;
        assert!(body.contains("role=\"alert\"") && body.contains("(text)") && body.contains("988"), "{body}");
        let r = c
            .post(fx.app.url("/portal/journal"))
            .form(&[("csrf_token", csrf.as_str()), ("text", "ok"), ("prompt", "no-such-prompt")])
            .send()
            .await?;
        assert_eq!(r.status(), 422);
        assert!(r.text().await?.contains("(prompt)"));
        let r = c
            .post(fx.app.url("/portal/journal"))
            .form(&[("csrf_token", csrf.as_str()), ("text", ENTRY), ("prompt", "grounding-body"), ("session", fx.session.as_str())])
            .send()
            .await?;
        assert_eq!(r.status(), 303);
        let (_, own) = fx.get(&fx.patient3, "/api/v1/portal/journal").await?;
        let own: Value = serde_json::from_str(&own)?;
        let entry = own["items"][0].clone();
        assert_eq!((entry["prompt_id"].as_str(), entry["session_id"].as_str()), (Some("grounding-body"), Some(fx.session.as_str())));
        let id = entry["id"].as_str().unwrap();
        let page = c.get(fx.app.url(&format!("/portal/journal/{id}"))).send().await?.text().await?;
        assert!(page.contains("988") && page.contains("JRN-4417") && page.contains("Private"), "{page}");
        let r = c
            .post(fx.app.url(&format!("/portal/journal/{id}")))
            .form(&[("csrf_token", csrf.as_str()), ("op", "share")])
            .send()
            .await?;
        assert_eq!(r.status(), 303);
        let page = c.get(fx.app.url(&format!("/portal/journal/{id}"))).send().await?.text().await?;
        assert!(page.contains("Withdraw sharing"), "{page}");
        let (_, own) = fx.get(&fx.patient3, "/api/v1/portal/journal").await?;
        let own: Value = serde_json::from_str(&own)?;
        assert!(own["prompt_session"].is_null(), "an entry about the session is written: no prompt: {own}");
        fx.app.stop().await
    }

    async fn the_demo_has_signed_and_amended_integration_notes_and_shared_and_private_entries(b) {
        let app = TestApp::demo(b).await?;
        assert_eq!(app.count("integration_notes WHERE signed_at IS NOT NULL").await?, 2);
        assert_eq!(app.count("integration_note_amendments").await?, 1);
        assert_eq!(app.count("journal_entries WHERE shared_at IS NOT NULL").await?, 1);
        assert_eq!(app.count("journal_entries WHERE shared_at IS NULL").await?, 1);
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let queue: Value = app.get_bearer(&therapist, "/api/v1/journal/queue").await?.json().await?;
        assert_eq!(queue["items"].as_array().unwrap().len(), 1, "{queue}");
        app.stop().await
    }
}

both_backends! {
    async fn the_record_export_holds_signed_notes_with_amendments_and_shared_entries_only(b) {
        let fx = Fx::new(b).await?;
        let (s, note) = fx.draft(&fx.therapist, NOTE).await?;
        assert_eq!(s, 201, "{note}");
        let id = note["id"].as_str().unwrap().to_owned();
        let (s, _) = fx.post(&fx.therapist, &format!("/api/v1/integration-notes/{id}/sign"), json!({})).await?;
        assert_eq!(s, 200);
        let amend = format!("/api/v1/integration-notes/{id}/amendments");
        let (s, _) = fx.post(&fx.therapist, &amend, json!({"summary": "Corrected AMD-5512", "reason": "Typo"})).await?;
        assert_eq!(s, 201);
        let (s, _) = fx.draft(&fx.therapist2, DRAFT).await?;
        assert_eq!(s, 201);
        let shared = fx.write_entry(&fx.patient3, ENTRY).await?;
        let (s, _) = fx.post(&fx.patient3, &format!("/api/v1/portal/journal/{shared}/share"), json!({})).await?;
        assert_eq!(s, 200);
        fx.write_entry(&fx.patient3, "Private entry PRV-7781").await?;

        let (s, req) = fx
            .post(&fx.nurse, &format!("/api/v1/patients/{}/record-requests", fx.patient3_id), json!({"kind": "access"}))
            .await?;
        assert_eq!(s, 201, "{req}");
        let rid = req["id"].as_str().unwrap().to_owned();
        let (s, _) = fx.post(&fx.nurse, &format!("/api/v1/record-requests/{rid}/steps"), json!({"step": "provide"})).await?;
        assert_eq!(s, 200);
        let (s, body) = fx.get(&fx.patient3, &format!("/api/v1/portal/record-requests/{rid}/export")).await?;
        assert_eq!(s, 200, "{body}");
        let x: Value = serde_json::from_str(&body)?;
        let section = |key: &str| -> Vec<Value> {
            x["sections"].as_array().unwrap().iter().find(|s| s["key"] == key).unwrap()["items"].as_array().unwrap().clone()
        };
        let notes = section("integration_notes");
        assert_eq!(notes.len(), 1, "the signed note only, not the draft: {notes:?}");
        assert_eq!(notes[0]["summary"], NOTE, "the original as signed");
        assert_eq!(notes[0]["amendments"][0]["summary"], "Corrected AMD-5512");
        let journal = section("journal");
        assert_eq!(journal.len(), 1, "{journal:?}");
        assert_eq!((journal[0]["id"].as_str(), journal[0]["text"].as_str()), (Some(shared.as_str()), Some(ENTRY)));
        assert!(!body.contains("DRF-8804") && !body.contains("PRV-7781"), "no draft, no private entry");
        // The printable copy says the same.
        let (c, _) = fx.signed_in("patient3@demo.kapstone.test").await?;
        let page = c.get(fx.app.url(&format!("/portal/records/{rid}/export"))).send().await?.text().await?;
        assert!(page.contains("Integration notes") && page.contains("QMW-3301") && page.contains("JRN-4417"));
        assert!(!page.contains("DRF-8804") && !page.contains("PRV-7781"));
        fx.app.stop().await
    }
}

both_backends! {
    async fn the_note_list_and_the_journal_queue_page_without_missing_or_repeating_a_row(b) {
        let fx = Fx::new(b).await?;
        // Drafts are their author's: the author pages through them, another therapist never sees them.
        for n in 0..3 {
            let (s, note) = fx.draft(&fx.therapist, &format!("Paged draft {n}")).await?;
            assert_eq!(s, 201, "{note}");
        }
        let path = format!("/api/v1/patients/{}/notes", fx.patient3_id);
        let mine = fx.app.walk_ids(&fx.therapist, &path, 2, "id").await?;
        let theirs = fx.app.walk_ids(&fx.therapist2, &path, 1, "id").await?;
        assert_eq!(mine.len(), theirs.len() + 3, "{mine:?} {theirs:?}");
        assert!(theirs.iter().all(|t| mine.contains(t)));
        fx.app.refuses_bad_paging(&fx.therapist, &path).await?;
        let (s, e) = fx.get(&fx.therapist, &format!("{path}?patient={}", fx.patient3_id)).await?;
        assert!(s == 422 && e.contains("\"patient\""), "the path names the patient: {e}");
        let tomorrow = Timestamp::now() + SignedDuration::from_hours(24);
        let (_, none) = fx.get(&fx.therapist, &format!("{path}?from={tomorrow}")).await?;
        assert_eq!(serde_json::from_str::<Value>(&none)?["items"], json!([]), "{none}");

        // Three more shared entries wait in the queue, in the order they were shared.
        for n in 0..3 {
            let id = fx.write_entry(&fx.patient3, &format!("Shared for paging {n}")).await?;
            let (s, e) = fx.post(&fx.patient3, &format!("/api/v1/portal/journal/{id}/share"), json!({})).await?;
            assert_eq!(s, 200, "{e}");
        }
        let waiting = fx.app.count("journal_entries WHERE shared_at IS NOT NULL AND first_read_at IS NULL").await?;
        let queue = fx.app.walk_pages(&fx.therapist, "/api/v1/journal/queue", 2).await?;
        assert_eq!(i64::try_from(queue.len())?, waiting);
        assert!(queue.len() > 2);
        let shared: Vec<&str> = queue.iter().filter_map(|e| e["shared_at"].as_str()).collect();
        assert!(shared.windows(2).all(|w| w[0] <= w[1]), "{shared:?}");
        let ids = fx.app.walk_ids(&fx.therapist, &format!("/api/v1/journal/queue?patient={}", fx.patient3_id), 1, "id").await?;
        assert!(ids.len() >= 3 && queue.iter().all(|e| e["patient_id"] != fx.patient3_id.as_str() || ids.contains(&e["id"].to_string())));
        fx.app.refuses_bad_paging(&fx.therapist, "/api/v1/journal/queue").await?;
        fx.app.stop().await
    }
}
