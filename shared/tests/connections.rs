//! `Db::connect` hands out connections of the caller's own and reuses them once dropped, with
//! the statements prepared on them. (The idle pool exists for local files only: a remote
//! connection holds no SQLite handle.)

use shared::db::{self, Db};

async fn has_marker(conn: &db::PooledConnection) -> bool {
    db::query_one(
        conn,
        "SELECT count(*) FROM temp.sqlite_schema WHERE name = 'marker'",
        (),
        |r| db::int(r, 0),
    )
    .await
    .unwrap()
        > 0
}

#[tokio::test]
async fn on_a_file_a_dropped_connection_is_reused_but_never_shared_while_held() {
    // Arrange: a TEMP table exists only on the connection that created it.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_file(&dir.path().join("pool.db")).await.unwrap();
    let first = db.connect().await.unwrap();
    first
        .execute("CREATE TEMP TABLE marker (x)", ())
        .await
        .unwrap();

    // Act + Assert: while `first` is held, another caller gets another connection.
    let second = db.connect().await.unwrap();
    assert!(
        !has_marker(&second).await,
        "a held connection was handed out twice"
    );
    drop(second);
    drop(first);

    // Once dropped, the next caller gets it back, set up as every connection is.
    let again = db.connect().await.unwrap();
    assert!(
        has_marker(&again).await,
        "the dropped connection was not reused"
    );
    let fk = db::query_one(&again, "PRAGMA foreign_keys", (), |r| db::int(r, 0))
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn on_a_file_a_connection_dropped_inside_a_transaction_is_closed_not_reused() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_file(&dir.path().join("pool.db")).await.unwrap();
    let conn = db.connect().await.unwrap();
    conn.execute("CREATE TABLE t (x)", ()).await.unwrap();
    conn.execute("CREATE TEMP TABLE marker (x)", ())
        .await
        .unwrap();

    // Act: a caller gives up half-way through a write transaction.
    conn.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
    drop(conn);

    // Assert: the next caller gets a fresh connection, outside any transaction, which can write
    // at once (the abandoned one was closed, its write lock released and its insert undone).
    let next = db.connect().await.unwrap();
    assert!(
        !has_marker(&next).await,
        "a connection inside a transaction was reused"
    );
    assert!(next.is_autocommit());
    next.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
    let rows = db::query_all(&next, "SELECT x FROM t", (), |r| db::int(r, 0))
        .await
        .unwrap();
    assert_eq!(rows, vec![2]);
}

#[tokio::test]
async fn on_a_file_a_prepared_statement_stays_with_its_connection_and_runs_again_after_an_error() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_file(&dir.path().join("pool.db")).await.unwrap();
    let conn = db.connect().await.unwrap();
    conn.execute("CREATE TABLE t (x INTEGER CHECK (x > 0))", ())
        .await
        .unwrap();
    const INSERT: &str = "INSERT INTO t (x) VALUES (?1) RETURNING x";
    let insert = |conn, x: i64| async move {
        db::query_one_cached(conn, INSERT, [x], |r| db::int(r, 0)).await
    };

    // Act: the statement fails its CHECK, then runs again with good values.
    let refused = insert(&conn, -1).await;
    let stored = [
        insert(&conn, 1).await.unwrap(),
        insert(&conn, 2).await.unwrap(),
    ];
    let statement = conn.prepared(INSERT).await.unwrap();
    drop(conn);
    let again = db.connect().await.unwrap();

    // Assert: nothing of the refused insert, both good ones, and the same statement handed back
    // with the connection it was prepared on.
    assert!(refused.is_err());
    assert_eq!(stored, [1, 2]);
    let rows = db::query_all(&again, "SELECT x FROM t ORDER BY x", (), |r| db::int(r, 0))
        .await
        .unwrap();
    assert_eq!(rows, vec![1, 2]);
    assert!(std::sync::Arc::ptr_eq(
        &statement,
        &again.prepared(INSERT).await.unwrap()
    ));
    assert!(
        again.is_autocommit(),
        "a reused statement holds no transaction open"
    );
}
