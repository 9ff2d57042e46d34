//! Psychotherapy notes (KAP-SPEC 10, TV-HIP-3, TV-HIP-4): the author writes, reads and amends
//! their own notes; nobody else (another therapist, a prescriber who is not the author, a nurse,
//! an admin, the front desk, the patient) gets a note or its text from any route; bad input
//! names the field and stores nothing; an amendment keeps the original; audit events carry ids,
//! never the text.

use jiff::{SignedDuration, Timestamp};
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

/// A phrase that appears nowhere else, so finding it in a response is a leak.
const SECRET: &str = "Spoke of the lighthouse dream ZQX-7741";
const MARKER: &str = "ZQX-7741";

struct Fx {
    app: TestApp,
    /// The dosing session the notes are written on, and its patient (demo patient 3).
    session: String,
    patient: String,
    therapist: String,
    therapist2: String,
    prescriber: String,
    prescriber2: String,
    nurse: String,
    admin: String,
    front: String,
    patient3: String,
}

async fn add_account(app: &TestApp, admin: &str, email: &str, role: &str) -> anyhow::Result<String> {
    let r = app
        .client()
        .post(app.url("/api/v1/users"))
        .bearer_auth(admin)
        .json(&json!({"email": email, "name": format!("Second {role}"), "role": role, "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "account {email}: {}", r.status());
    app.token(email).await
}

impl Fx {
    async fn new(b: TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let therapist2 = add_account(&app, &admin, "second.therapist@clinic.test", "therapist").await?;
        let prescriber2 = add_account(&app, &admin, "second.prescriber@clinic.test", "prescriber").await?;
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
        let r = app
            .client()
            .post(app.url(&format!("/api/v1/appointments/{appointment}/session")))
            .bearer_auth(&nurse)
            .send()
            .await?;
        assert_eq!(r.status(), 201);
        let opened: Value = r.json().await?;
        let session = opened["id"].as_str().unwrap().to_owned();
        Ok(Self {
            therapist: app.token("therapist@demo.kapstone.test").await?,
            prescriber: app.token("prescriber@demo.kapstone.test").await?,
            front: app.token("frontdesk@demo.kapstone.test").await?,
            app,
            session,
            patient,
            therapist2,
            prescriber2,
            nurse,
            admin,
            patient3,
        })
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let r = self.app.client().post(self.app.url(path)).bearer_auth(token).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn write(&self, token: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.post(token, &format!("/api/v1/sessions/{}/psychotherapy-notes", self.session), body).await
    }

    async fn amend(&self, token: &str, note: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.post(token, &format!("/api/v1/psychotherapy-notes/{note}/amendments"), body).await
    }

    async fn get(&self, token: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let r = self.app.get_bearer(token, path).await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    async fn list(&self, token: &str) -> anyhow::Result<(u16, String)> {
        self.get(token, &format!("/api/v1/sessions/{}/psychotherapy-notes", self.session)).await
    }

    async fn audit(&self, action: &str) -> anyhow::Result<i64> {
        self.app.count(&format!("audit_events WHERE action = '{action}'")).await
    }

    async fn signed_in(&self, email: &str) -> anyhow::Result<(reqwest::Client, String)> {
        let (c, r) = self.app.browser_login(email, PASSWORD).await?;
        anyhow::ensure!(r.status().is_redirection(), "sign-in of {email}: {}", r.status());
        let csrf = self.app.csrf_of(&c).await?;
        Ok((c, csrf))
    }
}

both_backends! {
    async fn the_author_writes_reads_and_amends_and_the_original_is_kept(b) {
        let fx = Fx::new(b).await?;
        let (s, note) = fx.write(&fx.therapist, json!({"text": format!("  {SECRET}\r\nLong silence after.  ")})).await?;
        assert_eq!(s, 201, "{note}");
        assert_eq!(note["text"], format!("{SECRET}\nLong silence after."), "trimmed, line breaks kept as LF");
        assert_eq!(note["session_id"], fx.session.as_str());
        assert_eq!(note["patient_id"], fx.patient.as_str());
        assert!(note["signed_at"].is_string() && note["amendments"] == json!([]), "{note}");
        let id = note["id"].as_str().unwrap().to_owned();

        let (s, body) = fx.list(&fx.therapist).await?;
        assert_eq!(s, 200, "{body}");
        let listed: Value = serde_json::from_str(&body)?;
        assert_eq!(listed["notes"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["notes"][0]["id"], id.as_str());

        // TV-HIP-4: a signed note is never edited; the correction is an amendment beside it.
        let corrected = "Spoke of the harbour dream ZQX-7741";
        let (s, amended) = fx.amend(&fx.therapist, &id, json!({"text": corrected, "reason": "Misheard the place"})).await?;
        assert_eq!(s, 201, "{amended}");
        assert_eq!(amended["text"], format!("{SECRET}\nLong silence after."), "the original is kept: {amended}");
        assert_eq!(amended["amendments"][0]["text"], corrected);
        assert_eq!(amended["amendments"][0]["reason"], "Misheard the place");
        let (_, body) = fx.list(&fx.therapist).await?;
        let listed: Value = serde_json::from_str(&body)?;
        assert_eq!(listed["notes"][0]["amendments"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["notes"][0]["text"], format!("{SECRET}\nLong silence after."));
        // The same text again is not an amendment; the note as it stands is refused, naming `text`.
        let (s, e) = fx.amend(&fx.therapist, &id, json!({"text": corrected, "reason": "Again"})).await?;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("text")), "{e}");
        // An amendment of an amendment is not a thing: amendments belong to the original.
        let amendment_id = amended["amendments"][0]["id"].as_str().unwrap();
        let (s, _) = fx.amend(&fx.therapist, amendment_id, json!({"text": "x", "reason": "y"})).await?;
        assert_eq!(s, 404);

        // Stored once each, and never changed or removed, even with database access.
        assert_eq!(fx.app.count("psychotherapy_notes").await?, 2);
        assert_eq!(fx.app.count("psychotherapy_notes WHERE amends_id IS NULL").await?, 1);
        assert!(fx.app.raw_sql("UPDATE psychotherapy_notes SET body = 'rewritten'").await.is_err(), "append-only");
        assert!(fx.app.raw_sql("DELETE FROM psychotherapy_notes").await.is_err(), "append-only");
        assert_eq!(fx.app.count(&format!("psychotherapy_notes WHERE body LIKE '{SECRET}%'")).await?, 1);

        // Audited with ids only: the write names the note, the amendment names the note and itself.
        assert_eq!(fx.audit("psychotherapy_note.write").await?, 1);
        assert_eq!(fx.audit("psychotherapy_note.amend").await?, 1);
        assert_eq!(fx.audit("psychotherapy_note.read").await?, 2);
        assert_eq!(
            fx.app.count(&format!("audit_events WHERE action = 'psychotherapy_note.write' AND entity_id = '{id}'")).await?,
            1
        );
        assert_eq!(
            fx.app
                .count(&format!(
                    "audit_events WHERE action LIKE 'psychotherapy_note.%' AND patient_id = '{}' AND actor_role = 'therapist'",
                    fx.patient
                ))
                .await?,
            4
        );
        assert_eq!(
            fx.app
                .count("audit_events WHERE reason LIKE '%ZQX%' OR reason LIKE '%lighthouse%' OR reason LIKE '%harbour%' OR reason LIKE '%Misheard%'")
                .await?,
            0,
            "no text in the audit log"
        );

        // The page: the author's notes, the plain statement that they are private, and both forms.
        let (c, csrf) = fx.signed_in("therapist@demo.kapstone.test").await?;
        let page_url = fx.app.url(&format!("/sessions/{}/psychotherapy-note", fx.session));
        let page = c.get(&page_url).send().await?.text().await?;
        assert!(page.contains(MARKER) && page.contains("Misheard the place"), "{page}");
        assert!(page.contains("Only you, the author, can read these notes"), "{page}");
        assert!(page.contains("not part of the record the patient can request"), "{page}");
        let r = c.post(&page_url).form(&[("csrf_token", csrf.as_str()), ("text", "Second note from the page.")]).send().await?;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], format!("/sessions/{}/psychotherapy-note?saved=note", fx.session).as_str());
        let r = c
            .post(&page_url)
            .form(&[("csrf_token", csrf.as_str()), ("amends", id.as_str()), ("text", "Third reading."), ("reason", "Clarified")])
            .send()
            .await?;
        assert_eq!(r.status(), 303);
        let page = c.get(&page_url).send().await?.text().await?;
        assert!(page.contains("Second note from the page.") && page.contains("Third reading."), "{page}");
        assert!(page.contains(&format!("{SECRET}\nLong silence after.")), "the original is still shown");
        assert_eq!(fx.app.count("psychotherapy_notes").await?, 4);
        fx.app.stop().await
    }

    async fn nobody_but_the_author_gets_the_note_from_any_route(b) {
        let fx = Fx::new(b).await?;
        let (s, note) = fx.write(&fx.therapist, json!({"text": SECRET})).await?;
        assert_eq!(s, 201, "{note}");
        let id = note["id"].as_str().unwrap().to_owned();
        // A prescriber keeps their own notes too; the therapist does not see them.
        let (s, _) = fx.write(&fx.prescriber, json!({"text": "The prescriber's own note PRX-5512"})).await?;
        assert_eq!(s, 201);
        let (_, mine) = fx.list(&fx.therapist).await?;
        assert!(mine.contains(MARKER) && !mine.contains("PRX-5512"), "{mine}");

        // Other clinicians who keep notes get their own list (empty here, or only theirs), and
        // the author's note cannot be amended by them: it is not found.
        let writes_before = fx.app.count("psychotherapy_notes").await?;
        for (who, token) in [("therapist2", &fx.therapist2), ("prescriber2", &fx.prescriber2), ("prescriber", &fx.prescriber)] {
            let (s, body) = fx.list(token).await?;
            assert_eq!(s, 200, "{who}: {body}");
            assert!(!body.contains(MARKER), "{who} read the note: {body}");
            let (s, e) = fx.amend(token, &id, json!({"text": "Taken over", "reason": "Mine now"})).await?;
            assert_eq!(s, 404, "{who}: {e}");
            assert!(!e.to_string().contains(MARKER));
        }
        let (_, body) = fx.list(&fx.therapist2).await?;
        assert_eq!(serde_json::from_str::<Value>(&body)?["notes"], json!([]));
        assert_eq!(fx.app.count("psychotherapy_notes").await?, writes_before, "nothing written by the refusals");

        // Roles that do not keep notes are refused outright, on the API and the page.
        let page = format!("/sessions/{}/psychotherapy-note", fx.session);
        let api = format!("/api/v1/sessions/{}/psychotherapy-notes", fx.session);
        for (who, token) in [("admin", &fx.admin), ("nurse", &fx.nurse), ("front desk", &fx.front), ("patient", &fx.patient3)] {
            for path in [&page, &api] {
                let (s, body) = fx.get(token, path).await?;
                assert_eq!(s, 403, "{who} on {path}");
                assert!(!body.contains(MARKER), "{who} on {path}");
            }
            let (s, e) = fx.amend(token, &id, json!({"text": "x", "reason": "y"})).await?;
            assert_eq!(s, 403, "{who}: {e}");
            let (s, _) = fx.write(token, json!({"text": "x"})).await?;
            assert_eq!(s, 403, "{who}");
        }

        // The text is in no other view of the record, for anyone, the author included (TV-HIP-3:
        // the session, its summary, the chart, the floor board, the portal, the audit log).
        let s = &fx.session;
        let p = &fx.patient;
        let staff_views = [
            format!("/api/v1/sessions/{s}"),
            format!("/sessions/{s}"),
            format!("/sessions/{s}/summary"),
            format!("/api/v1/sessions/{s}/rems-form"),
            format!("/patients/{p}"),
            format!("/api/v1/patients/{p}"),
            format!("/api/v1/patients/{p}/pathway"),
            "/api/v1/floor".to_owned(),
            "/floor/board".to_owned(),
            "/".to_owned(),
        ];
        for (who, token) in [("author", &fx.therapist), ("therapist2", &fx.therapist2), ("prescriber2", &fx.prescriber2), ("nurse", &fx.nurse)] {
            for path in &staff_views {
                let (status, body) = fx.get(token, path).await?;
                assert!(status < 500, "{who} on {path}: {status}");
                assert!(!body.contains(MARKER), "{who} found the note on {path}");
            }
        }
        let (status, body) = fx.get(&fx.therapist, &format!("/sessions/{s}")).await?;
        assert_eq!(status, 200);
        assert!(body.contains("id=\"psychotherapy-note-link\""), "the author's way to their notes");
        let (_, body) = fx.get(&fx.nurse, &format!("/sessions/{s}")).await?;
        assert!(!body.contains("psychotherapy-note-link"), "no link for a nurse, who may not keep notes");
        for path in ["/api/v1/audit", "/admin/audit", "/admin/audit.csv", &format!("/patients/{p}"), &format!("/api/v1/patients/{p}")] {
            let (status, body) = fx.get(&fx.admin, path).await?;
            assert_eq!(status, 200, "admin on {path}");
            assert!(!body.contains(MARKER), "the admin found the note on {path}");
        }
        let (_, audit) = fx.get(&fx.admin, "/api/v1/audit?action=psychotherapy_note.write").await?;
        assert!(audit.contains("psychotherapy_note.write"), "the write is in the log, by id: {audit}");
        for path in ["/portal", "/api/v1/portal/me"] {
            let (status, body) = fx.get(&fx.patient3, path).await?;
            assert_eq!(status, 200, "patient on {path}");
            assert!(!body.contains(MARKER), "the patient found the note on {path}");
            let lower = body.to_lowercase();
            assert!(
                !lower.contains("psychotherapy_note") && !lower.contains("psychotherapy note"),
                "the portal does not mention the notes nor their reads: {path}"
            );
        }
        fx.app.stop().await
    }

    async fn bad_input_names_the_field_and_stores_nothing(b) {
        let fx = Fx::new(b).await?;
        let (s, note) = fx.write(&fx.therapist, json!({"text": SECRET})).await?;
        assert_eq!(s, 201);
        let id = note["id"].as_str().unwrap().to_owned();
        let notes_before = fx.app.count("psychotherapy_notes").await?;
        let writes_before = fx.audit("psychotherapy_note.write").await? + fx.audit("psychotherapy_note.amend").await?;

        let too_long = "x".repeat(20_001);
        let cases = [
            (json!({"text": ""}), 422, "text"),
            (json!({"text": "  \r\n "}), 422, "text"),
            (json!({"text": too_long}), 422, "text"),
            (json!({"text": "bell\u{7}"}), 422, "text"),
            (json!({"text": "tab\there"}), 422, "text"),
            (json!({"text": 5}), 400, "text"),
            (json!({}), 400, "text"),
            (json!({"text": "fine", "author_id": "someone"}), 400, "author_id"),
        ];
        for (body, status, field) in &cases {
            let (s, e) = fx.write(&fx.therapist, body.clone()).await?;
            assert_eq!((s, e["error"]["field"].as_str()), (*status, Some(*field)), "{body} -> {e}");
        }
        let amendments = [
            (json!({"text": "Corrected"}), 400, "reason"),
            (json!({"text": "Corrected", "reason": " "}), 422, "reason"),
            (json!({"text": "Corrected", "reason": "two\nlines"}), 422, "reason"),
            (json!({"text": "", "reason": "Why"}), 422, "text"),
            (json!({"text": too_long, "reason": "Why"}), 422, "text"),
        ];
        for (body, status, field) in &amendments {
            let (s, e) = fx.amend(&fx.therapist, &id, body.clone()).await?;
            assert_eq!((s, e["error"]["field"].as_str()), (*status, Some(*field)), "{body} -> {e}");
        }
        // An unknown or malformed session or note is not found.
        let unknown = "01a21565-0000-7000-8000-000000000000";
        let (s, _) = fx.post(&fx.therapist, &format!("/api/v1/sessions/{unknown}/psychotherapy-notes"), json!({"text": "x"})).await?;
        assert_eq!(s, 404);
        let (s, _) = fx.post(&fx.therapist, "/api/v1/sessions/not-an-id/psychotherapy-notes", json!({"text": "x"})).await?;
        assert_eq!(s, 404);
        let (s, _) = fx.amend(&fx.therapist, unknown, json!({"text": "x", "reason": "y"})).await?;
        assert_eq!(s, 404);

        // The page shows a refusal next to its form, keeps what was typed, and stores nothing.
        let (c, csrf) = fx.signed_in("therapist@demo.kapstone.test").await?;
        let url = fx.app.url(&format!("/sessions/{}/psychotherapy-note", fx.session));
        let r = c.post(&url).form(&[("csrf_token", csrf.as_str()), ("text", "   ")]).send().await?;
        assert_eq!(r.status(), 422);
        let page = r.text().await?;
        assert!(page.contains("id=\"note-error\"") && page.contains("(text)"), "{page}");
        let r = c
            .post(&url)
            .form(&[("csrf_token", csrf.as_str()), ("amends", id.as_str()), ("text", "Kept as typed QWV-1"), ("reason", "")])
            .send()
            .await?;
        assert_eq!(r.status(), 422);
        let page = r.text().await?;
        assert!(page.contains(&format!("id=\"amend-{id}-error\"")) && page.contains("(reason)"), "{page}");
        assert!(page.contains("Kept as typed QWV-1"), "what was typed is kept");
        // Without the CSRF field the form is refused.
        let r = c.post(&url).form(&[("text", "No token")]).send().await?;
        assert_eq!(r.status(), 403);

        assert_eq!(fx.app.count("psychotherapy_notes").await?, notes_before);
        assert_eq!(
            fx.audit("psychotherapy_note.write").await? + fx.audit("psychotherapy_note.amend").await?,
            writes_before
        );
        fx.app.stop().await
    }
}
