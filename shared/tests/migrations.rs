use shared::db::{self, Db};
use shared::migrations::{self, Migration, MIGRATIONS};

async fn schema_of(conn: &db::PooledConnection) -> Vec<(String, String)> {
    db::query_all(
        conn,
        "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        (),
        |r| Ok((db::text(r, 0)?, db::text(r, 1)?)),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fresh_database_gets_the_full_schema() {
    let dir = tempfile::tempdir().unwrap();
    let database = testkit::TestDatabase::start(dir.path(), "fresh.db");
    let db = database.open().await;
    let conn = db.connect().await.unwrap();

    let applied = migrations::migrate(&conn).await.unwrap();

    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6]);
    let schema = schema_of(&conn).await;
    for (kind, name) in [
        ("table", "users"),
        ("table", "video_sources"),
        ("table", "processing_jobs"),
        ("table", "schema_migrations"),
        ("index", "processing_jobs_claimable"),
        ("index", "processing_jobs_leases"),
        ("index", "processing_jobs_video"),
        ("index", "video_sources_user_history"),
        ("trigger", "processing_jobs_progress_only_rises"),
        ("trigger", "video_sources_ready_is_final"),
        ("trigger", "processing_jobs_completed_marks_video_ready"),
        ("table", "idempotency_keys"),
        ("index", "video_sources_user_status_history"),
        ("table", "uploads"),
        ("index", "uploads_to_clean"),
        ("trigger", "uploads_final_states"),
        ("view", "write_guards"),
        ("trigger", "write_guards_abort"),
        ("index", "video_sources_file_path"),
        ("index", "video_sources_to_purge"),
        ("index", "processing_jobs_turns"),
        ("table", "queue_turns"),
        ("trigger", "video_sources_deleted_ends_its_jobs"),
        ("trigger", "processing_jobs_take_a_turn"),
        ("trigger", "processing_jobs_claim_moves_the_turn"),
        ("table", "sign_in_failures"),
        ("index", "sign_in_failures_window"),
        ("index", "video_sources_user_created"),
        ("view", "quota_checks"),
        ("trigger", "quota_checks_refuse"),
    ] {
        assert!(
            schema.contains(&(kind.into(), name.into())),
            "missing {kind} {name}: {schema:?}"
        );
    }
    // every column of requirement R2, plus the queue's
    let job_cols = db::query_all(
        &conn,
        "SELECT name FROM pragma_table_info('processing_jobs')",
        (),
        |r| db::text(r, 0),
    )
    .await
    .unwrap();
    for col in [
        "id",
        "video_source_id",
        "job_type",
        "status",
        "progress",
        "payload",
        "result_summary",
        "created_at",
        "updated_at",
        "attempts",
        "max_attempts",
        "run_after",
        "lease_token",
        "lease_expires_at",
        "error_message",
    ] {
        assert!(job_cols.iter().any(|c| c == col), "processing_jobs.{col}");
    }
    let video_cols = db::query_all(
        &conn,
        "SELECT name FROM pragma_table_info('video_sources')",
        (),
        |r| db::text(r, 0),
    )
    .await
    .unwrap();
    for col in [
        "id",
        "user_id",
        "source_type",
        "source_url",
        "file_path",
        "title",
        "duration_seconds",
        "status",
        "error_message",
        "created_at",
        "updated_at",
    ] {
        assert!(video_cols.iter().any(|c| c == col), "video_sources.{col}");
    }
    let fk = db::query_one(&conn, "PRAGMA foreign_keys", (), |r| db::int(r, 0))
        .await
        .unwrap();
    assert_eq!(fk, 1, "foreign keys are enforced");
}

#[tokio::test]
async fn a_database_file_is_opened_in_wal_mode_with_synchronous_normal() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_file(&dir.path().join("fresh.db")).await.unwrap();
    let conn = db.connect().await.unwrap();

    migrations::migrate(&conn).await.unwrap();

    let mode = db::query_one(&conn, "PRAGMA journal_mode", (), |r| db::text(r, 0))
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk = db::query_one(&conn, "PRAGMA foreign_keys", (), |r| db::int(r, 0))
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let sync = db::query_one(&conn, "PRAGMA synchronous", (), |r| db::int(r, 0))
        .await
        .unwrap();
    assert_eq!(sync, 1, "synchronous = NORMAL");
}

#[tokio::test]
async fn running_migrations_again_changes_nothing() {
    let t = testkit::TestEnv::start().await;
    t.seed_user().await;
    let before = schema_of(&t.conn).await;
    let ledger = t.count("SELECT count(*) FROM schema_migrations").await;

    let applied = migrations::migrate(&t.conn).await.unwrap();

    assert!(applied.is_empty());
    assert_eq!(schema_of(&t.conn).await, before);
    assert_eq!(
        t.count("SELECT count(*) FROM schema_migrations").await,
        ledger
    );
    assert_eq!(
        t.count("SELECT count(*) FROM users").await,
        1,
        "data untouched"
    );
}

#[test]
fn eight_cold_starts_migrating_one_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let database = testkit::TestDatabase::start(dir.path(), "race.db");
    let url = database.url();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));

    let results: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let db = Db::open(&url).await.unwrap();
                        let conn = db.connect().await.unwrap();
                        barrier.wait();
                        let applied = migrations::migrate(&conn).await.unwrap();
                        // As a function's runtime lives on after a request: the connection's
                        // close (a task libsql spawns when it is dropped) gets to run.
                        drop((conn, db));
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        applied
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let applied_by: Vec<_> = results.iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(
        applied_by.len(),
        1,
        "exactly one migrator applied the schema: {results:?}"
    );
    assert_eq!(applied_by[0], &vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn an_applied_migration_that_was_edited_is_refused() {
    let t = testkit::TestEnv::start().await;
    let mut edited: Vec<Migration> = MIGRATIONS.to_vec();
    edited[0] = Migration::new(1, edited[0].name, "CREATE TABLE sneaky (id INTEGER);");

    let err = migrations::migrate_with(&t.conn, &edited)
        .await
        .unwrap_err();

    assert!(matches!(err, db::DbError::MigrationEdited { .. }), "{err}");
    assert!(err.to_string().contains("0001_init"), "{err}");
    assert_eq!(
        t.count("SELECT count(*) FROM sqlite_schema WHERE name = 'sneaky'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_new_migration_is_applied_on_top_and_recorded() {
    let t = testkit::TestEnv::start().await;
    let mut more: Vec<Migration> = MIGRATIONS.to_vec();
    let next = MIGRATIONS.len() as i64 + 1;
    more.push(Migration::new(
        next,
        "9999_test",
        "CREATE TABLE extra (id INTEGER PRIMARY KEY);",
    ));

    let applied = migrations::migrate_with(&t.conn, &more).await.unwrap();

    assert_eq!(applied, vec![next]);
    assert_eq!(
        t.count("SELECT count(*) FROM schema_migrations").await,
        next
    );
    assert!(migrations::migrate_with(&t.conn, &more)
        .await
        .unwrap()
        .is_empty());
}
