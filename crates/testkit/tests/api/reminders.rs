//! Reminders: queued once per appointment and kind, whatever the number of passes or processes,
//! to the patient's address, without clinical detail.

use kapstone_store::scheduling as st;
use kapstone_testkit::{TestApp, both_backends};
use serde_json::Value;

both_backends! {
    async fn reminders_are_queued_once_and_say_nothing_clinical(b) {
        let app = TestApp::demo(b).await?;
        let p1: Value = app.get_bearer(&app.token("patient1@demo.kapstone.test").await?, "/api/v1/portal/me").await?.json().await?;
        let patient: kapstone_domain::PatientId = p1["id"].as_str().unwrap().parse()?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let types: Value = app.get_bearer(&nurse, "/api/v1/appointment-types").await?.json().await?;
        let type_of = |code: &str| -> uuid::Uuid {
            types["items"].as_array().unwrap().iter().find(|t| t["code"] == code).unwrap()["id"].as_str().unwrap().parse().unwrap()
        };
        let clinic = kapstone_store::clinics::list(&app.db).await?[0].clinic_id();
        let location = st::locations(&app.db, clinic).await?[0].id;
        let by = kapstone_store::users::find_by_email(&app.db, &kapstone_domain::Email::parse("nurse@demo.kapstone.test")?)
            .await?.unwrap().user_id();
        // One consultation 20 hours ahead (the 24 h reminder is due) and one dosing session that
        // started 30 hours ago (the next-day check-in is due). Written directly: booking rules
        // (working hours, past times) are not what is tested here.
        let now = kapstone_domain::UtcTs::now().unix_micros();
        let hour = 3_600_000_000_i64;
        let mut ids = Vec::new();
        for (code, start) in [("consultation", now + 20 * hour), ("dosing-sl", now - 30 * hour)] {
            let start = start - start % (300 * 1_000_000);
            let mut tx = app.db.begin().await?;
            let booked = st::book(&mut tx, &st::NewAppointment {
                clinic,
                patient,
                type_id: type_of(code),
                location,
                room: None,
                start: kapstone_domain::UtcTs::from_unix_micros(start),
                end: kapstone_domain::UtcTs::from_unix_micros(start + hour),
                staff: &[],
                claims: &[],
                by,
                rescheduled_from: None,
                course: None,
            }).await?;
            ids.push(booked.unwrap());
            tx.commit().await?;
        }
        let before = app.count("outbox WHERE reminder IS NOT NULL").await?;
        let first = kapstone_web::app::jobs::queue_reminders(&app.state).await?;
        assert!(first >= 2, "the 24 h reminder and the check-in: {first}");
        // A second pass, and a pass from another process on the same database, queue nothing.
        assert_eq!(kapstone_web::app::jobs::queue_reminders(&app.state).await?, 0);
        // Another server process: its own connections to the same database.
        let other = kapstone_web::state::AppState::new(
            kapstone_store::Db::connect(&app.fresh.url).await?,
            kapstone_web::state::ServerConfig::default(),
        );
        assert_eq!(kapstone_web::app::jobs::queue_reminders(&other).await?, 0);
        assert_eq!(app.count("outbox WHERE reminder IS NOT NULL").await?, before + i64::try_from(first)?);
        // Each of the two appointments got its reminder, to the patient's address (the demo's own
        // appointments may have theirs too, depending on the time of day).
        let id_sql = |id: uuid::Uuid| match app.backend {
            kapstone_testkit::TestBackend::Sqlite => format!("X'{}'", id.simple()),
            kapstone_testkit::TestBackend::Postgres => format!("'{id}'"),
        };
        for (id, kind) in [(ids[0], "24h"), (ids[1], "checkin")] {
            let q = format!("outbox WHERE reminder = '{kind}' AND appointment_id = {} AND to_address = 'patient1@demo.kapstone.test'", id_sql(id));
            assert_eq!(app.count(&q).await?, 1, "{kind}");
        }
        for word in ["ketamine", "spravato", "dosing", "lozenge", "mg"] {
            assert_eq!(app.count(&format!("outbox WHERE reminder IS NOT NULL AND lower(body) LIKE '%{word}%'")).await?, 0, "{word}");
        }
        app.stop().await
    }
}

/// A minimal SMTP server that accepts every message and keeps what it received (the test's
/// mail server: the delivery code speaks real SMTP to it).
async fn smtp_sink() -> anyhow::Result<(u16, std::sync::Arc<tokio::sync::Mutex<Vec<String>>>)> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let got = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let store = got.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(buf) = data.as_mut() {
                        if line == "." {
                            store.lock().await.push(std::mem::take(buf));
                            data = None;
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            buf.push_str(&line);
                            buf.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(reply).await;
                    if verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    Ok((port, got))
}

both_backends! {
    async fn the_outbox_is_delivered_by_smtp_and_failures_are_retried_later(b) {
        let app = TestApp::demo(b).await?;
        let clinic = kapstone_store::clinics::list(&app.db).await?[0].clinic_id();
        let mut tx = app.db.begin().await?;
        for n in 1..=3 {
            kapstone_store::invitations::queue_message(&mut tx, clinic, &format!("patient{n}@demo.kapstone.test"),
                "Your appointment at the clinic", "A reminder.", Default::default()).await?;
        }
        tx.commit().await?;
        let unsent = app.count("outbox WHERE sent_at IS NULL").await?;
        assert!(unsent >= 3);
        // A mail server that is down: every message fails once and waits before the next try.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let dead_port = closed.local_addr()?.port();
        drop(closed);
        let with = |url: String| kapstone_web::state::ServerConfig { smtp_url: Some(url), ..Default::default() };
        let down = kapstone_web::state::AppState::new(
            kapstone_store::Db::connect(&app.fresh.url).await?,
            with(format!("smtp://127.0.0.1:{dead_port}")),
        );
        let (sent, failed) = kapstone_web::app::jobs::deliver(&down).await?;
        assert_eq!((sent, i64::try_from(failed)?), (0, unsent.min(20)));
        assert_eq!(app.count("outbox WHERE attempts = 1 AND last_error IS NOT NULL AND sent_at IS NULL").await?, unsent.min(20));
        assert_eq!(kapstone_web::app::jobs::deliver(&down).await?, (0, 0), "not due again yet");
        // Once the retry is due and the server is up, they go out, each once.
        app.raw_sql("UPDATE outbox SET next_attempt_at = NULL").await?;
        let (port, got) = smtp_sink().await?;
        let up = kapstone_web::state::AppState::new(
            kapstone_store::Db::connect(&app.fresh.url).await?,
            with(format!("smtp://127.0.0.1:{port}")),
        );
        let (sent, failed) = kapstone_web::app::jobs::deliver(&up).await?;
        assert_eq!((i64::try_from(sent)?, failed), (unsent.min(20), 0));
        assert_eq!(app.count("outbox WHERE sent_at IS NOT NULL").await?, unsent.min(20));
        assert_eq!(kapstone_web::app::jobs::deliver(&up).await?, (0, 0));
        let mail = got.lock().await;
        assert_eq!(i64::try_from(mail.len())?, unsent.min(20));
        assert!(mail.iter().all(|m| m.contains("Subject:") && m.contains("From: Kapstone")), "{:?}", mail.first());
        app.stop().await
    }
}
