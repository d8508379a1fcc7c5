//! A multi-statement write is one transaction on both databases (on a libSQL server: one batch,
//! one round trip): every statement of it or none.

use shared::db::{self, Stmt};
use shared::repo;
use testkit::TestEnv;

#[tokio::test]
async fn a_transaction_that_fails_half_way_writes_nothing() {
    // Arrange: a video and its job, then a statement the schema refuses.
    let t = TestEnv::start().await;
    let (video, job) = testkit::seed::new_video(t.seed_user().await, 1);
    let now = t.conn.now();
    let steps = vec![
        repo::video_sources::insert(&video, now, None).unwrap(),
        repo::processing_jobs::insert_for_new_video(&job, now).unwrap(),
        Stmt::new("UPDATE processing_jobs SET progress = 200", ()).unwrap(),
    ];

    // Act
    let result = db::transaction(&t.conn, &steps).await;

    // Assert
    let err = result.unwrap_err();
    assert!(!err.is_unavailable(), "an SQL error, not an outage: {err}");
    assert_eq!(t.count("SELECT count(*) FROM video_sources").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM processing_jobs").await, 0);
}

#[tokio::test]
async fn a_write_guard_aborts_the_transaction_it_is_in() {
    let t = TestEnv::start().await;
    let (video, job) = testkit::seed::new_video(t.seed_user().await, 1);
    let now = t.conn.now();
    let steps = vec![
        repo::video_sources::insert(&video, now, None).unwrap(),
        repo::processing_jobs::insert_for_new_video(&job, now).unwrap(),
        Stmt::new("UPDATE users SET email = email WHERE id = -1", ()).unwrap(),
        Stmt::new(db::GUARD_SQL, ()).unwrap(),
    ];

    let err = db::transaction(&t.conn, &steps).await.unwrap_err();

    assert!(err.is_guard(), "{err}");
    assert_eq!(t.count("SELECT count(*) FROM video_sources").await, 0);
}

#[tokio::test]
async fn a_job_insert_after_an_insert_that_inserted_nothing_inserts_nothing() {
    // Arrange: an earlier write on this connection left changes() = 1 and a last rowid behind;
    // the video insert is skipped by its idempotency condition.
    let t = TestEnv::start().await;
    let key = repo::idempotency_keys::IdempotencyKey {
        user_id: t.seed_user().await,
        route: "test",
        key: "k".into(),
        request_hash: "h".into(),
    };
    let (video, job) = testkit::seed::new_video(t.seed_user().await, 1);
    let first = testkit::seed::video_with_job(&t.conn, &video, &job)
        .await
        .unwrap();
    db::execute(
        &t.conn,
        "INSERT INTO idempotency_keys (user_id, route, key, request_hash, video_source_id,
             response_body, created_at) VALUES (?1, 'test', 'k', 'h', ?2, '{}', 'x')",
        (t.seed_user().await, first.0.id),
    )
    .await
    .unwrap();
    let now = t.conn.now();

    // Act
    let rows = db::transaction(
        &t.conn,
        &[
            repo::video_sources::insert(&video, now, Some(&key)).unwrap(),
            repo::processing_jobs::insert_for_new_video(&job, now).unwrap(),
        ],
    )
    .await
    .unwrap();

    // Assert
    assert!(rows[0].is_empty() && rows[1].is_empty(), "{rows:?}");
    assert_eq!(t.count("SELECT count(*) FROM video_sources").await, 1);
    assert_eq!(t.count("SELECT count(*) FROM processing_jobs").await, 1);
}

#[tokio::test]
async fn parameters_of_every_type_reach_the_database_as_they_are() {
    let t = TestEnv::start().await;
    let tricky = "it's -- not a comment; ?1 /* nor this */ 'quoted' \"ids\" é😀\n";
    let steps = vec![Stmt::new(
        "SELECT ?1, ?2, ?3, ?4, ?5, typeof(?1), typeof(?2), typeof(?3), typeof(?4), ?6 - ?7",
        libsql::params![
            tricky,
            -42i64,
            i64::MIN,
            -0.125f64,
            libsql::Value::Blob(vec![0, 1, 254, 255]),
            5i64,
            -5i64,
        ],
    )
    .unwrap()];

    let rows = db::transaction(&t.conn, &steps).await.unwrap();

    let r = &rows[0][0];
    assert_eq!(db::text(r, 0).unwrap(), tricky);
    assert_eq!(db::int(r, 1).unwrap(), -42);
    assert_eq!(db::int(r, 2).unwrap(), i64::MIN);
    assert_eq!(db::real(r, 3).unwrap(), -0.125);
    assert_eq!(
        db::Columns::value(r, 4).unwrap(),
        libsql::Value::Blob(vec![0, 1, 254, 255])
    );
    let types: Vec<String> = (5..9).map(|i| db::text(r, i).unwrap()).collect();
    assert_eq!(types, ["text", "integer", "integer", "real"]);
    assert_eq!(db::int(r, 9).unwrap(), 10, "5 - -5 is not a comment");
}
