//! The database: a local SQLite file or a remote libSQL server, behind one [`Db`].
//!
//! Rules learnt the hard way with libsql 0.10 (see the project README, "Database"):
//! - every task gets its own [`Db::connect`] (reused once dropped); clones of one `Connection`
//!   share a SQLite handle;
//! - anything with `RETURNING` goes through `query()`, never `execute()`;
//! - every `Rows` is read to its end ([`query_all`] does it, even when a row fails to map);
//! - values are read with [`libsql::Row::get_value`], never `get::<T>()`, which panics on a type mismatch.
//! - a statement kept for reuse is reset before and after each use ([`query_cached`]), so it never
//!   holds a read transaction open between uses.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use libsql::Connection;
use libsql::{params::IntoParams, Row, Rows, Statement, Value};

use crate::config::DatabaseUrl;

/// How long a local connection waits for another writer before answering `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] libsql::Error),
    #[error("could not open the database: {0}")]
    Open(String),
    #[error("stored data breaks the schema: {0}")]
    Corrupt(String),
    #[error(
        "migration {name} was edited after it was applied (stored checksum {stored}, \
         this build has {embedded}); add a new migration instead of editing an applied one"
    )]
    MigrationEdited {
        name: String,
        stored: String,
        embedded: String,
    },
}

impl DbError {
    /// The database is locked by another writer (after the busy timeout) or unreachable for now:
    /// a caller may retry, an HTTP handler answers 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Open(_) => true,
            Self::Sql(libsql::Error::ConnectionFailed(_) | libsql::Error::Hrana(_)) => true,
            _ => self.is_busy(),
        }
    }

    /// A foreign key points at a row that does not exist (e.g. a deleted user).
    pub fn is_foreign_key_violation(&self) -> bool {
        match self {
            Self::Sql(libsql::Error::SqliteFailure(code, msg)) => {
                *code == 787 || msg.contains("FOREIGN KEY")
            }
            Self::Sql(e) => e.to_string().contains("FOREIGN KEY constraint failed"),
            _ => false,
        }
    }

    /// Another writer holds the lock (past the busy timeout): retrying may succeed.
    pub fn is_busy(&self) -> bool {
        let Self::Sql(e) = self else { return false };
        match e {
            libsql::Error::SqliteFailure(code, _) => matches!(code & 0xff, 5 | 6),
            libsql::Error::RemoteSqliteFailure(code, ext, _) => {
                matches!(code & 0xff, 5 | 6) || matches!(ext & 0xff, 5 | 6)
            }
            libsql::Error::Hrana(_) | libsql::Error::ConnectionFailed(_) => {
                let text = e.to_string();
                text.contains("SQLITE_BUSY") || text.contains("database is locked")
            }
            _ => false,
        }
    }
}

/// Idle connections of a local database kept for reuse (and, while any is idle, to keep the
/// WAL: when the last connection to a WAL database closes, SQLite checkpoints and deletes it).
const MAX_IDLE: usize = 4;

type IdleConnections = Arc<Mutex<Vec<(Connection, Statements)>>>;

/// Most statements one connection keeps prepared (the hot writes are a handful).
const MAX_STATEMENTS: usize = 32;

/// The statements a connection prepared through [`PooledConnection::prepared`], by SQL text.
/// They travel with their connection through the idle pool and are finalized with it.
#[derive(Default)]
struct Statements(Mutex<HashMap<String, Arc<Statement>>>);

impl Statements {
    fn get(&self, sql: &str) -> Option<Arc<Statement>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned()
    }

    fn keep(&self, sql: &str, stmt: &Arc<Statement>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() < MAX_STATEMENTS {
            map.insert(sql.to_owned(), stmt.clone());
        }
    }
}

/// An opened database. Cheap to share; hand out one connection per task with [`Db::connect`].
pub struct Db {
    /// Local files: connections handed back by [`PooledConnection`]s, reused by the next
    /// [`Db::connect`]. A new connection parses the whole schema on its first statement
    /// (~0.1 ms here); a cold start that opens, migrates and answers one request now does it
    /// once instead of four times. Declared first: closed before the database.
    idle: Option<IdleConnections>,
    database: libsql::Database,
}

impl Db {
    /// Opens the database `url` names. A local file (and its directory) is created if missing and
    /// switched to WAL; a remote database is reached over HTTP with its token.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, DbError> {
        match url {
            DatabaseUrl::File(path) => Self::open_file(path).await,
            DatabaseUrl::Remote { url, auth_token } => {
                let database = libsql::Builder::new_remote(url.clone(), auth_token.clone())
                    .build()
                    .await
                    .map_err(|e| DbError::Open(format!("remote libSQL database: {e}")))?;
                Ok(Self {
                    idle: None,
                    database,
                })
            }
        }
    }

    pub async fn open_file(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Open(format!("creating {}: {e}", dir.display())))?;
        }
        let database = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| DbError::Open(format!("{}: {e}", path.display())))?;
        let db = Self {
            idle: Some(Arc::default()),
            database,
        };
        // WAL is a property of the file: set once, kept by every later connection. This
        // connection goes back to the pool and stays open for the life of the `Db`.
        let conn = &db.connect().await?;
        let mode = retry_busy(|| async move {
            query_one(conn, "PRAGMA journal_mode = WAL", (), |r| text(r, 0)).await
        })
        .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Open(format!(
                "{} refused WAL mode (got {mode})",
                path.display()
            )));
        }
        Ok(db)
    }

    pub fn is_local(&self) -> bool {
        self.idle.is_some()
    }

    /// A connection of the caller's own until it is dropped, set up for this project's rules:
    /// an idle one when there is one, else a new one. Never shared: clones of one libSQL
    /// `Connection` share a SQLite handle, and a rollback on one would undo another's writes.
    pub async fn connect(&self) -> Result<PooledConnection, DbError> {
        let reused = self
            .idle
            .as_ref()
            .and_then(|idle| idle.lock().unwrap_or_else(|e| e.into_inner()).pop());
        let (conn, statements) = match reused {
            Some(reused) => reused,
            None => {
                let conn = self.database.connect()?;
                if self.is_local() {
                    conn.busy_timeout(BUSY_TIMEOUT)?;
                    conn.execute("PRAGMA foreign_keys = ON", ()).await?;
                    conn.execute("PRAGMA synchronous = NORMAL", ()).await?;
                }
                (conn, Statements::default())
            }
        };
        Ok(PooledConnection {
            conn: Some(conn),
            statements,
            idle: self.idle.clone(),
        })
    }
}

/// A connection from [`Db::connect`]; derefs to libSQL's `Connection`. Dropped, it goes back to
/// its database's idle connections, unless it is inside a transaction (a caller that gave up
/// half-way) or enough are idle already: then it is closed.
pub struct PooledConnection {
    conn: Option<Connection>,
    statements: Statements,
    idle: Option<IdleConnections>,
}

impl PooledConnection {
    /// `sql` prepared on this connection once and reused by every later call with the same
    /// text, for the writes that run on every request and every job: SQLite parses and plans a
    /// statement anew on each `query()`, which costs more than the insert itself
    /// (BENCHMARKS.md, "Queue against peers"). [`query_cached`] runs it.
    pub async fn prepared(&self, sql: &str) -> Result<Arc<Statement>, DbError> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt);
        }
        let stmt = Arc::new(self.prepare(sql).await?);
        self.statements.keep(sql, &stmt);
        Ok(stmt)
    }
}

impl Deref for PooledConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let (Some(conn), Some(idle)) = (self.conn.take(), &self.idle) else {
            return;
        };
        if conn.is_autocommit() {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push((conn, std::mem::take(&mut self.statements)));
            }
        }
    }
}

/// Runs a query and maps every row, always reading the `Rows` to its end.
pub async fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    read_all(conn.query(sql, params).await?, map).await
}

/// [`query_all`] with the statement prepared once per connection ([`PooledConnection::prepared`]),
/// for the writes that run on every request and every job. The statement is reset before it
/// runs (a reused statement starts over) and after (it holds nothing between uses, even after
/// an error).
pub async fn query_cached<T>(
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    let stmt = conn.prepared(sql).await?;
    stmt.reset();
    let result = match stmt.query(params).await {
        Ok(rows) => read_all(rows, map).await,
        Err(e) => Err(e.into()),
    };
    stmt.reset();
    result
}

/// [`query_one`] through [`query_cached`].
pub async fn query_one_cached<T>(
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<T, DbError> {
    one(query_cached(conn, sql, params, map).await?, sql)
}

/// Maps every row and reads `rows` to its end, even when a row fails to map.
async fn read_all<T>(
    mut rows: Rows,
    mut map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    let mut out = Vec::new();
    let mut first_err = None;
    while let Some(row) = rows.next().await? {
        match map(&row) {
            Ok(v) => out.push(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// At most one row (the statement is still read to its end).
pub async fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Option<T>, DbError> {
    Ok(query_all(conn, sql, params, map).await?.into_iter().next())
}

/// Exactly one row.
pub async fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<T, DbError> {
    one(query_all(conn, sql, params, map).await?, sql)
}

fn one<T>(rows: Vec<T>, sql: &str) -> Result<T, DbError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| DbError::Corrupt(format!("expected a row from: {sql}")))
}

/// Runs a write ending in `RETURNING 1` (rows read to the end); `true` when it wrote a row —
/// the guarded `UPDATE … WHERE <state>` / `INSERT … ON CONFLICT DO NOTHING` pattern.
pub async fn wrote_row(
    conn: &Connection,
    sql: &str,
    params: impl IntoParams,
) -> Result<bool, DbError> {
    Ok(query_opt(conn, sql, params, |r| int(r, 0)).await?.is_some())
}

/// Retries `op` a few times, with jittered back-off, while the database answers busy.
/// SQLite's busy handler is not first-come-first-served, so a writer can be starved past its
/// timeout; this bounded retry is the second line of defence. `op` must be atomic (a single
/// statement or a whole transaction), so a busy failure has written nothing.
pub async fn retry_busy<T, F, Fut>(mut op: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    const RETRIES: u32 = 4;
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_busy() && attempt < RETRIES => {
                attempt += 1;
                let cap_ms = 20u64 << attempt;
                let wait = Duration::from_millis(cap_ms / 2 + fastrand::u64(0..=cap_ms / 2));
                tracing::warn!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "database busy, retrying"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

// ---- reading columns without panics -------------------------------------------------------

fn type_error(row: &Row, idx: i32, want: &str, got: &Value) -> DbError {
    let name = row.column_name(idx).unwrap_or("?");
    DbError::Corrupt(format!("column {name}: expected {want}, found {got:?}"))
}

pub fn int(row: &Row, idx: i32) -> Result<i64, DbError> {
    match row.get_value(idx)? {
        Value::Integer(v) => Ok(v),
        other => Err(type_error(row, idx, "an integer", &other)),
    }
}

pub fn opt_int(row: &Row, idx: i32) -> Result<Option<i64>, DbError> {
    match row.get_value(idx)? {
        Value::Null => Ok(None),
        Value::Integer(v) => Ok(Some(v)),
        other => Err(type_error(row, idx, "an integer or NULL", &other)),
    }
}

/// A REAL column (SQLite may hand back an INTEGER for a whole number: both are accepted).
pub fn real(row: &Row, idx: i32) -> Result<f64, DbError> {
    match row.get_value(idx)? {
        Value::Real(v) => Ok(v),
        Value::Integer(v) => Ok(v as f64),
        other => Err(type_error(row, idx, "a number", &other)),
    }
}

pub fn text(row: &Row, idx: i32) -> Result<String, DbError> {
    match row.get_value(idx)? {
        Value::Text(v) => Ok(v),
        other => Err(type_error(row, idx, "text", &other)),
    }
}

pub fn opt_text(row: &Row, idx: i32) -> Result<Option<String>, DbError> {
    match row.get_value(idx)? {
        Value::Null => Ok(None),
        Value::Text(v) => Ok(Some(v)),
        other => Err(type_error(row, idx, "text or NULL", &other)),
    }
}

pub fn timestamp(row: &Row, idx: i32) -> Result<DateTime<Utc>, DbError> {
    let raw = text(row, idx)?;
    crate::time::parse(&raw).map_err(|e| DbError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

pub fn opt_timestamp(row: &Row, idx: i32) -> Result<Option<DateTime<Utc>>, DbError> {
    match opt_text(row, idx)? {
        None => Ok(None),
        Some(raw) => crate::time::parse(&raw)
            .map(Some)
            .map_err(|e| DbError::Corrupt(format!("timestamp {raw:?}: {e}"))),
    }
}

pub fn json(row: &Row, idx: i32) -> Result<serde_json::Value, DbError> {
    let raw = text(row, idx)?;
    serde_json::from_str(&raw).map_err(|e| DbError::Corrupt(format!("JSON column: {e}")))
}

pub fn opt_json(row: &Row, idx: i32) -> Result<Option<serde_json::Value>, DbError> {
    match opt_text(row, idx)? {
        None => Ok(None),
        Some(raw) => serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| DbError::Corrupt(format!("JSON column: {e}"))),
    }
}
