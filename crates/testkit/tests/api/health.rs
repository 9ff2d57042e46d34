use kapstone_testkit::{TestApp, TestBackend, both_backends};
use serde_json::Value;

both_backends! {
    async fn healthz_reports_the_database(b) {
        let app = TestApp::spawn(b).await?;
        let resp = app.client().get(app.url("/healthz")).send().await?;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await?;
        assert_eq!(body, serde_json::json!({"status": "ok", "database": "ok"}));
        app.stop().await
    }
}

/// Stops access to the PostgreSQL database under a running server, then restores it: the
/// server answers 503 meanwhile, keeps running, and recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_postgres_is_unreachable_and_recovers() {
    if !kapstone_testkit::backends().contains(&TestBackend::Postgres) {
        // PostgreSQL-only; .ci/run's PostgreSQL suite runs it (and fails if PostgreSQL is missing).
        eprintln!("skipped: KAPSTONE_TEST_POSTGRES_URL is not set");
        return;
    }
    let app = TestApp::spawn(TestBackend::Postgres).await.unwrap();
    // The group-commit writer has its connection (it keeps it from one batch to the next).
    let read = || {
        kapstone_domain::audit::NewAuditEvent::new(
            kapstone_domain::audit::AuditAction::PatientRead,
            "patient",
            kapstone_domain::audit::Outcome::Success,
        )
    };
    app.state.writer().record(read()).await.unwrap();
    let name = app.fresh.url.expose().rsplit('/').next().unwrap().to_owned();
    let admin_url = std::env::var("KAPSTONE_TEST_POSTGRES_URL").unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.unwrap();
    let exec = |sql: String| sqlx::AssertSqlSafe(sql);
    sqlx::Executor::execute(&mut admin, exec(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))).await.unwrap();
    sqlx::Executor::execute(
        &mut admin,
        exec(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")),
    )
    .await
    .unwrap();
    let resp = app.client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");

    sqlx::Executor::execute(&mut admin, exec(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))).await.unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let resp = app.client().get(app.url("/healthz")).send().await.unwrap();
        if resp.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "the server did not recover after the database came back");
    // The writer's kept connection was closed under it; the next batch runs on a new one.
    app.state.writer().record(read()).await.unwrap();
    app.stop().await.unwrap();
}
