use kapstone_store::{Db, DbUrl};
use kapstone_testkit::{TempDir, TestApp, TestBackend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_round_trip_a_populated_database() {
    let app = TestApp::demo(TestBackend::Sqlite).await.unwrap();
    app.token("nurse@demo.kapstone.test").await.unwrap();
    let dir = TempDir::new();
    let file = dir.0.join("backup.db");
    kapstone_store::backup::backup_sqlite(&app.db, &file).await.unwrap();
    // Never overwrite an existing backup.
    assert!(kapstone_store::backup::backup_sqlite(&app.db, &file).await.is_err());

    let target = DbUrl::Sqlite(dir.0.join("restored/kapstone.db"));
    kapstone_store::backup::restore_sqlite(&file, &target).await.unwrap();
    let restored = Db::connect(&target).await.unwrap();
    let n = kapstone_store::audit::verify(&restored).await.unwrap().unwrap();
    assert_eq!(n, app.count("audit_events").await.unwrap());
    let users: i64 = match &restored {
        Db::Sqlite { read, .. } => sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *read.acquire().await.unwrap())
            .await
            .unwrap(),
        Db::Postgres { .. } => unreachable!(),
    };
    assert_eq!(users, app.count("users").await.unwrap());
    restored.close().await;

    // A non-empty target is refused.
    let err = kapstone_store::backup::restore_sqlite(&file, &target).await.unwrap_err();
    assert!(err.to_string().contains("already holds a database"), "{err}");
    app.stop().await.unwrap();
}
