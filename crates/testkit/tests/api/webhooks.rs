//! Webhooks (issue 8): events are queued in the transaction of the change, delivered to a local
//! receiver signed with the endpoint's secret, retried with backoff until marked failed, shown to
//! the admin, re-sent on request; payloads carry ids and the type only.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use kapstone_domain::UtcTs;
use kapstone_domain::webhook::{self, MAX_ATTEMPTS};
use kapstone_testkit::{TestApp, both_backends};
use kapstone_web::app::integrations::{deliver_due, deliver_due_at};
use serde_json::{Value, json};

/// What the receiver saw: (path, signature header, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A local receiver: `/ok` answers 204, `/flaky` answers 500 while `failing` is set.
struct Receiver {
    base: String,
    seen: Seen,
    failing: Arc<Mutex<bool>>,
}

impl Receiver {
    async fn spawn() -> anyhow::Result<Self> {
        let seen: Seen = Arc::default();
        let failing = Arc::new(Mutex::new(true));
        let record = |path: &'static str, seen: Seen, failing: Option<Arc<Mutex<bool>>>| {
            move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                let failing = failing.clone();
                async move {
                    let sig = headers.get("kapstone-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    seen.lock().unwrap().push((path.to_owned(), sig, body));
                    if failing.is_some_and(|f| *f.lock().unwrap()) {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }
        };
        let router = axum::Router::new()
            .route("/ok", axum::routing::post(record("/ok", seen.clone(), None)))
            .route("/flaky", axum::routing::post(record("/flaky", seen.clone(), Some(failing.clone()))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { base, seen, failing })
    }

    fn on(&self, path: &str) -> Vec<(String, String)> {
        self.seen.lock().unwrap().iter().filter(|(p, _, _)| p == path).map(|(_, s, b)| (s.clone(), b.clone())).collect()
    }
}

/// An HTTPS receiver on 127.0.0.1 with a certificate from the test clinic's own CA
/// (tests/fixtures/tls): answers every request 204 and keeps its signature header and body.
async fn spawn_tls_receiver(seen: Seen) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/server.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("https://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends here, before sending anything.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body its Content-Length announces.
                let (head_end, length) = loop {
                    let Ok(n) = tls.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0usize);
                        break (at + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let Ok(n) = tls.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let sig = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().starts_with("kapstone-signature:").then(|| l[19..].trim().to_owned())
                    })
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                seen.lock().unwrap().push((path, sig, body));
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(base)
}

async fn register(app: &TestApp, admin: &str, url: &str, events: &[&str]) -> anyhow::Result<(String, String)> {
    let resp = app
        .client()
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(admin)
        .json(&json!({ "url": url, "events": events }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 201, "register: {}", resp.status());
    let body: Value = resp.json().await?;
    Ok((body["id"].as_str().unwrap_or_default().to_owned(), body["secret"].as_str().unwrap_or_default().to_owned()))
}

async fn deliveries(app: &TestApp, admin: &str) -> anyhow::Result<Vec<Value>> {
    let list: Value = app.get_bearer(admin, "/api/v1/webhooks/deliveries").await?.json().await?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

async fn first_patient(app: &TestApp, token: &str) -> anyhow::Result<String> {
    let list: Value = app.get_bearer(token, "/api/v1/patients?limit=1").await?.json().await?;
    Ok(list["items"][0]["id"].as_str().unwrap_or_default().to_owned())
}

async fn submit(app: &TestApp, token: &str, patient: &str, body: Value) -> anyhow::Result<u16> {
    let path = format!("/api/v1/patients/{patient}/questionnaires");
    Ok(app.client().post(app.url(&path)).bearer_auth(token).json(&body).send().await?.status().as_u16())
}

fn now_unix() -> i64 {
    UtcTs::now().unix_micros() / 1_000_000
}

/// Every value under `data` is an id (a UUID) or a status word; no names, scores or answers.
fn ids_only(payload: &Value) -> bool {
    payload["data"].as_object().is_some_and(|d| {
        d.iter().all(|(k, v)| {
            (k.ends_with("_id") && v.as_str().is_some_and(|s| s.parse::<uuid::Uuid>().is_ok()))
                || (k == "status" && v.is_string())
                || (k == "rescheduled_to" && v.is_string())
        })
    })
}

both_backends! {
    async fn deliveries_are_signed_carry_ids_only_and_show_as_delivered(b) {
        let app = TestApp::demo(b).await?;
        let rx = Receiver::spawn().await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let (_, secret) = register(&app, &admin, &format!("{}/ok", rx.base), &[
            "questionnaire.submitted", "safety_alert.raised", "appointment.cancelled",
        ]).await?;
        assert!(secret.starts_with("whsec_"));
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient = first_patient(&app, &nurse).await?;

        // A refused submission changes nothing, so it queues nothing (same transaction).
        assert_eq!(submit(&app, &nurse, &patient, json!({"instrument": "phq9", "answers": [9]})).await?, 422);
        assert_eq!(app.count("webhook_deliveries").await?, 0);
        // A PHQ-9 with item 9 answered raises a safety alert: two events.
        let answers = json!({"instrument": "phq9", "answers": [3,3,3,3,3,3,3,3,2]});
        assert_eq!(submit(&app, &nurse, &patient, answers).await?, 201);
        assert_eq!(app.count("webhook_deliveries WHERE status = 'pending'").await?, 2);

        // Two passes at once (two servers): each delivery is sent exactly once.
        let (a, b2) = tokio::join!(deliver_due(&app.state), deliver_due(&app.state));
        let (a, b2) = (a.map_err(|e| anyhow::anyhow!("{e}"))?, b2.map_err(|e| anyhow::anyhow!("{e}"))?);
        assert_eq!((a.0 + b2.0, a.1 + b2.1), (2, 0));
        let got = rx.on("/ok");
        assert_eq!(got.len(), 2, "each delivery once");
        let mut types = Vec::new();
        for (sig, body) in &got {
            webhook::verify(&secret, sig, body.as_bytes(), now_unix(), webhook::TOLERANCE_SECONDS)
                .map_err(|e| anyhow::anyhow!("signature: {e}"))?;
            assert!(webhook::verify("whsec_other", sig, body.as_bytes(), now_unix(), 300).is_err());
            let payload: Value = serde_json::from_str(body)?;
            for key in ["id", "type", "occurred_at", "data"] {
                assert!(!payload[key].is_null(), "{key} in {payload}");
            }
            assert!(ids_only(&payload), "payload carries more than ids: {payload}");
            assert_eq!(payload["data"]["patient_id"], patient.as_str());
            for word in ["total", "severity", "answers", "level", "name", "phq9"] {
                assert!(!body.contains(word), "{word} in {body}");
            }
            types.push(payload["type"].as_str().unwrap_or_default().to_owned());
        }
        types.sort();
        assert_eq!(types, ["questionnaire.submitted", "safety_alert.raised"]);

        // The admin sees the status.
        let list = deliveries(&app, &admin).await?;
        assert_eq!(list.len(), 2);
        for d in &list {
            assert_eq!((d["status"].as_str(), d["attempts"].as_i64(), d["last_status_code"].as_i64()),
                (Some("delivered"), Some(1), Some(204)), "{d}");
        }
        let (c, _) = app.browser_login("admin@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let page = c.get(app.url("/admin/integrations")).send().await?.text().await?;
        assert!(page.contains("safety_alert.raised") && page.contains("answered 204"), "the page shows deliveries");
        assert!(!page.contains(&secret), "the signing secret is shown only once");

        // An event nobody subscribed to queues nothing; a cancellation is delivered.
        let to = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 60))?;
        let range = format!("/api/v1/appointments?limit=500&from={}&to={to}", jiff::Timestamp::now());
        let appts: Value = app.get_bearer(&nurse, &range).await?.json().await?;
        let booked = appts["items"].as_array().into_iter().flatten().find(|a| a["status"] == "booked").cloned();
        let booked = booked.ok_or_else(|| anyhow::anyhow!("the demo has a booked appointment ahead"))?;
        let id = booked["id"].as_str().unwrap_or_default();
        let resp = app.client().post(app.url(&format!("/api/v1/appointments/{id}/cancel")))
            .bearer_auth(&nurse).json(&json!({"reason": "Patient moved"})).send().await?;
        assert_eq!(resp.status(), 200);
        deliver_due(&app.state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let got = rx.on("/ok");
        let last: Value = serde_json::from_str(&got.last().map(|g| g.1.clone()).unwrap_or_default())?;
        assert_eq!((last["type"].as_str(), last["data"]["appointment_id"].as_str()), (Some("appointment.cancelled"), Some(id)));
        assert!(!got.last().is_some_and(|g| g.1.contains("Patient moved")), "the reason is not sent");
        app.stop().await
    }

    async fn a_failing_endpoint_is_retried_with_backoff_then_failed_and_resent(b) {
        let app = TestApp::demo(b).await?;
        let rx = Receiver::spawn().await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        register(&app, &admin, &format!("{}/flaky", rx.base), &["questionnaire.submitted"]).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient = first_patient(&app, &nurse).await?;
        assert_eq!(submit(&app, &nurse, &patient, json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,1]})).await?, 201);

        let run = |at: UtcTs| {
            let state = app.state.clone();
            async move { deliver_due_at(&state, at).await.map_err(|e| anyhow::anyhow!("{e}")) }
        };
        assert_eq!(run(UtcTs::now()).await?, (0, 1));
        let d = deliveries(&app, &admin).await?.remove(0);
        assert_eq!((d["status"].as_str(), d["attempts"].as_i64(), d["last_status_code"].as_i64()),
            (Some("pending"), Some(1), Some(500)), "{d}");
        // Not again before the backoff has passed...
        assert_eq!(run(UtcTs::now()).await?, (0, 0));
        assert_eq!(rx.on("/flaky").len(), 1);
        // ...then again, each wait longer, until the limit marks it failed.
        let mut at = UtcTs::now();
        for attempt in 2..=MAX_ATTEMPTS {
            at = at.plus(time::Duration::seconds(webhook::backoff_seconds(attempt - 1) + 1));
            assert_eq!(run(at).await?, (0, 1), "attempt {attempt}");
        }
        assert_eq!(rx.on("/flaky").len(), usize::try_from(MAX_ATTEMPTS)?);
        let d = deliveries(&app, &admin).await?.remove(0);
        assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("failed"), Some(i64::from(MAX_ATTEMPTS))), "{d}");
        assert_eq!(run(at.plus(time::Duration::days(1))).await?, (0, 0), "a failed delivery is not retried by itself");

        // The receiver is fixed; the admin sends it again and it is delivered.
        *rx.failing.lock().unwrap() = false;
        let id = d["id"].as_str().unwrap_or_default();
        let nurse_resend = app.client().post(app.url(&format!("/api/v1/webhooks/deliveries/{id}/redeliver")))
            .bearer_auth(&nurse).send().await?;
        assert_eq!(nurse_resend.status(), 403);
        let resend = app.client().post(app.url(&format!("/api/v1/webhooks/deliveries/{id}/redeliver")))
            .bearer_auth(&admin).send().await?;
        assert_eq!(resend.status(), 202);
        assert_eq!(run(UtcTs::now()).await?, (1, 0));
        let d = deliveries(&app, &admin).await?.remove(0);
        assert_eq!((d["status"].as_str(), d["last_status_code"].as_i64()), (Some("delivered"), Some(204)), "{d}");
        assert_eq!(app.count("audit_events WHERE action = 'webhook.redeliver'").await?, 1);
        app.stop().await
    }

    async fn https_endpoints_are_verified_against_the_public_roots_and_the_clinic_ca(b) {
        let seen: Seen = Arc::default();
        let base = spawn_tls_receiver(seen.clone()).await?;
        let clinic_ca = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem"))?;

        // Without the clinic's CA the receiver's certificate is not trusted: nothing is sent.
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        register(&app, &admin, &format!("{base}/hook"), &["questionnaire.submitted"]).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient = first_patient(&app, &nurse).await?;
        assert_eq!(submit(&app, &nurse, &patient, json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,1]})).await?, 201);
        assert_eq!(deliver_due(&app.state).await.map_err(|e| anyhow::anyhow!("{e}"))?, (0, 1));
        assert!(seen.lock().unwrap().is_empty(), "no request reaches an untrusted receiver");
        let d = deliveries(&app, &admin).await?.remove(0);
        assert_eq!((d["status"].as_str(), d["last_status_code"].as_i64()), (Some("pending"), None), "{d}");
        app.stop().await?;

        // With it (`--webhook-ca-file`), the delivery goes over TLS, signed.
        let config = kapstone_web::ServerConfig { webhook_ca_pem: Some(clinic_ca), ..Default::default() };
        let app = TestApp::demo_with(b, config).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let (_, secret) = register(&app, &admin, &format!("{base}/hook"), &["questionnaire.submitted"]).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient = first_patient(&app, &nurse).await?;
        assert_eq!(submit(&app, &nurse, &patient, json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,1]})).await?, 201);
        assert_eq!(deliver_due(&app.state).await.map_err(|e| anyhow::anyhow!("{e}"))?, (1, 0));
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (path, sig, body) = &got[0];
        assert_eq!(path, "/hook");
        webhook::verify(&secret, sig, body.as_bytes(), now_unix(), webhook::TOLERANCE_SECONDS)
            .map_err(|e| anyhow::anyhow!("signature: {e}"))?;
        let d = deliveries(&app, &admin).await?.remove(0);
        assert_eq!((d["status"].as_str(), d["last_status_code"].as_i64()), (Some("delivered"), Some(204)), "{d}");
        app.stop().await?;

        // A CA file that is not a certificate is refused when the server starts.
        let bad = kapstone_web::ServerConfig { webhook_ca_pem: Some("not a certificate".into()), ..Default::default() };
        let err = kapstone_web::app::integrations::webhook_client(&bad).err().unwrap_or_default();
        assert!(err.contains("no PEM certificate"), "{err}");
        Ok(())
    }

    async fn endpoints_take_only_http_urls_and_known_events_and_can_be_switched_off(b) {
        let app = TestApp::demo(b).await?;
        let rx = Receiver::spawn().await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        for (body, field) in [
            (json!({"url": "ftp://example.org/x", "events": ["appointment.booked"]}), "url"),
            (json!({"url": "https://user:pw@example.org/x", "events": ["appointment.booked"]}), "url"),
            (json!({"url": "https://example.org/x", "events": ["patient.read"]}), "events"),
            (json!({"url": "https://example.org/x", "events": []}), "events"),
        ] {
            let resp = app.client().post(app.url("/api/v1/webhooks")).bearer_auth(&admin).json(&body).send().await?;
            assert_eq!(resp.status(), 422, "{body}");
            let err: Value = resp.json().await?;
            assert_eq!(err["error"]["field"], field, "{err}");
        }
        assert_eq!(app.count("webhook_endpoints").await?, 0);
        // An API token never manages webhooks, whatever its scopes.
        let t: Value = app.client().post(app.url("/api/v1/tokens")).bearer_auth(&admin)
            .json(&json!({"name": "all", "scopes": ["clinical:read", "scheduling", "write"], "expires_in_days": 1}))
            .send().await?.json().await?;
        let token = t["token"].as_str().unwrap_or_default();
        assert_eq!(app.get_bearer(token, "/api/v1/webhooks").await?.status(), 403);

        let (id, _) = register(&app, &admin, &format!("{}/ok", rx.base), &["questionnaire.submitted"]).await?;
        let off = app.client().put(app.url(&format!("/api/v1/webhooks/{id}/active"))).bearer_auth(&admin)
            .json(&json!({"active": false})).send().await?;
        assert_eq!(off.status(), 204);
        // Switched off: nothing is queued for it.
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient = first_patient(&app, &nurse).await?;
        assert_eq!(submit(&app, &nurse, &patient, json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,0]})).await?, 201);
        assert_eq!(app.count("webhook_deliveries").await?, 0);
        // An integration's questionnaire (write scope) is an event like any other.
        let on = app.client().put(app.url(&format!("/api/v1/webhooks/{id}/active"))).bearer_auth(&admin)
            .json(&json!({"active": true})).send().await?;
        assert_eq!(on.status(), 204);
        assert_eq!(submit(&app, token, &patient, json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,0]})).await?, 201);
        assert_eq!(deliver_due(&app.state).await.map_err(|e| anyhow::anyhow!("{e}"))?, (1, 0));
        assert_eq!(rx.on("/ok").len(), 1);
        app.stop().await
    }
}
