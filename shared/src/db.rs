//! The database: a local SQLite file or a remote libSQL server, behind one [`Db`].
//!
//! Rules for libsql 0.10 (docs/decisions.md, "The database"):
//! - every task gets its own [`Db::connect`] (reused once dropped); clones of one `Connection`
//!   share a SQLite handle;
//! - anything with `RETURNING` goes through `query()`, never `execute()`;
//! - every `Rows` is read to its end ([`query_all`] does it, even when a row fails to map);
//! - values are read with [`libsql::Row::get_value`], never `get::<T>()`, which panics on a type mismatch.
//! - a statement kept for reuse is reset before and after each use ([`query_cached`]), so it never
//!   holds a read transaction open between uses.
//!
//! On a remote libSQL server every HTTP request is a network round trip, so:
//! - a statement that returns rows goes out as a one-statement Hrana batch with its parameters
//!   written into the SQL as literals ([`inline`]): one request, where libsql's `query()` makes
//!   two (a `describe`, then a cursor);
//! - a write of several statements is one [`transaction`]: `BEGIN IMMEDIATE; …; COMMIT` as one
//!   batch whose steps each run only if the one before succeeded, so a failure half-way commits
//!   nothing (the server closes the stream and rolls back). libsql's own `transaction()` opens a
//!   stream of its own, and statements run on the `Connection` then go out on another stream,
//!   outside the transaction; it is not used.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use libsql::params::{IntoParams, Params};
pub use libsql::Connection;
use libsql::{Row, Rows, Statement, Value};

use crate::config::DatabaseUrl;
use crate::time::Clock;

/// How long a local statement waits for another writer before answering `SQLITE_BUSY`. It waits
/// asynchronously ([`BusyWait`]): SQLite's own busy handler would sleep inside the call
/// (libsql's local calls are synchronous) and stall every other task of the runtime thread, such
/// as a worker's heartbeats.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pauses between a busy local statement's tries: SQLite's own busy handler's, the last one
/// repeated until [`BUSY_TIMEOUT`].
const BUSY_PAUSES_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// Longest a request to a remote server may take before it counts as unavailable: a connection
/// the network left half-open would otherwise hold a request (and its 29 s API budget) for ever.
/// It sits above the 15 s a capped `sqld` keeps a request waiting for a connection, so such a
/// request gets the server's own answer.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] libsql::Error),
    #[error("could not open the database: {0}")]
    Open(String),
    #[error("stored data breaks the schema: {0}")]
    Corrupt(String),
    #[error("a statement of this program cannot run: {0}")]
    Statement(String),
    #[error("the database server did not answer within {0:?}")]
    Timeout(Duration),
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
            Self::Open(_) | Self::Timeout(_) => true,
            Self::Sql(libsql::Error::ConnectionFailed(_)) => true,
            // A remote server's answer to a statement it ran is an SQL error like a local one;
            // anything else on the way there (refused, reset, timed out, a stream the server
            // dropped) means it cannot be reached for now.
            Self::Sql(e @ libsql::Error::Hrana(_)) => !is_remote_sql_error(e) || self.is_busy(),
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

    /// A [`GUARD_SQL`] step aborted its transaction: a condition of the write no longer held.
    pub fn is_guard(&self) -> bool {
        matches!(self, Self::Sql(e) if e.to_string().contains(GUARD_MESSAGE))
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

/// What the guard trigger of migration 0004 raises.
const GUARD_MESSAGE: &str = "write guard: a condition of this write no longer holds";

/// Whether a remote server answered a statement with an SQL error, rather than being out of
/// reach (or dropping a stream, such as a transaction it timed out). libsql 0.10 reports a
/// failed batch step as an `api error` and a failed single statement as a `stream error`
/// carrying the server's error code.
///
/// Other `api error`s are the server refusing the request, not a statement: one that is starting
/// answers `status=404 … Namespace \`default\` doesn't exist` for a moment after it listens,
/// and one shutting down times batches out (`Transaction timed out`).
fn is_remote_sql_error(e: &libsql::Error) -> bool {
    let text = e.to_string();
    let statement =
        text.contains("SQLite error") || text.contains("SQL string could not be parsed");
    (text.contains("api error:") && statement)
        || (text.contains("stream error:") && text.contains("code: \"SQL"))
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
    /// [`Db::connect`]. A new connection parses the whole schema on its first statement, so a
    /// cold start that opens, migrates and answers one request does it once. Declared first:
    /// closed before the database.
    idle: Option<IdleConnections>,
    database: libsql::Database,
    clock: Clock,
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
                    clock: Clock::system(),
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
            clock: Clock::system(),
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

    /// The same database, its time read from `clock` (tests move it; [`Db::open`] gives the
    /// system's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn is_local(&self) -> bool {
        self.idle.is_some()
    }

    pub fn is_remote(&self) -> bool {
        !self.is_local()
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
                    // No busy handler in SQLite: a busy statement answers at once and
                    // waits in `BusyWait`, off the runtime thread.
                    conn.busy_timeout(Duration::ZERO)?;
                    local_execute(&conn, "PRAGMA foreign_keys = ON", Params::None).await?;
                    local_execute(&conn, "PRAGMA synchronous = NORMAL", Params::None).await?;
                }
                (conn, Statements::default())
            }
        };
        Ok(PooledConnection {
            conn: Some(conn),
            statements,
            idle: self.idle.clone(),
            remote: self.is_remote(),
            clock: self.clock.clone(),
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
    remote: bool,
    clock: Clock,
}

impl PooledConnection {
    /// The current instant by its database's clock ([`Db::with_clock`]): what every timestamp
    /// written or compared is.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A connection to a remote libSQL server (each request a network round trip).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// `sql` prepared on this connection once and reused by every later call with the same
    /// text, for the writes that run on every request and every job: SQLite parses and plans a
    /// statement anew on each `query()`, which costs more than the insert itself.
    /// [`query_cached`] runs it.
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

/// Runs a query and maps every row, always reading the `Rows` to its end. On a remote server
/// this is one round trip ([`inline`]).
pub async fn query_all<T>(
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    if conn.remote {
        return read_all(remote_query(conn, sql, params).await?, map).await;
    }
    let params = params.into_params()?;
    let mut map = map;
    let mut wait = BusyWait::new(conn);
    loop {
        let result = match conn.query(sql, params.clone()).await {
            Ok(rows) => read_all(rows, &mut map).await,
            Err(e) => Err(e.into()),
        };
        if let Some(done) = wait.done(result).await {
            return done;
        }
    }
}

/// [`query_all`] with the statement prepared once per connection ([`PooledConnection::prepared`]),
/// for the writes that run on every request and every job. The statement is reset before it
/// runs (a reused statement starts over) and after (it holds nothing between uses, even after
/// an error). A remote server gets the one-request form of [`query_all`].
pub async fn query_cached<T>(
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    if conn.remote {
        return query_all(conn, sql, params, map).await;
    }
    let stmt = conn.prepared(sql).await?;
    let params = params.into_params()?;
    let mut map = map;
    let mut wait = BusyWait::new(conn);
    loop {
        stmt.reset();
        let result = match stmt.query(params.clone()).await {
            Ok(rows) => read_all(rows, &mut map).await,
            Err(e) => Err(e.into()),
        };
        stmt.reset();
        if let Some(done) = wait.done(result).await {
            return done;
        }
    }
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

/// Runs a statement that returns no rows; the number of rows it changed. One round trip on a
/// remote server.
pub async fn execute(
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
) -> Result<u64, DbError> {
    if conn.remote {
        return remote(conn.execute(sql, params)).await;
    }
    local_execute(conn, sql, params.into_params()?).await
}

/// [`execute`] on a local connection, waiting out a busy database ([`BusyWait`]).
async fn local_execute(conn: &Connection, sql: &str, params: Params) -> Result<u64, DbError> {
    let mut wait = BusyWait::new(conn);
    loop {
        let result = conn
            .execute(sql, params.clone())
            .await
            .map_err(DbError::from);
        if let Some(done) = wait.done(result).await {
            return done;
        }
    }
}

/// A local statement's wait for another writer: it is tried again, after a pause that does not
/// block the thread, until it is not busy or [`BUSY_TIMEOUT`] has passed. Inside a transaction
/// a statement is tried once: the transaction holds the write lock already.
struct BusyWait {
    deadline: Option<tokio::time::Instant>,
    tries: usize,
}

impl BusyWait {
    fn new(conn: &Connection) -> Self {
        Self {
            deadline: conn
                .is_autocommit()
                .then(|| tokio::time::Instant::now() + BUSY_TIMEOUT),
            tries: 0,
        }
    }

    /// `Some(result)` when the statement is done; `None` after a pause, to try it again.
    async fn done<T>(&mut self, result: Result<T, DbError>) -> Option<Result<T, DbError>> {
        let (Err(e), Some(deadline)) = (&result, self.deadline) else {
            return Some(result);
        };
        let last = BUSY_PAUSES_MS.len() - 1;
        let pause = Duration::from_millis(BUSY_PAUSES_MS[self.tries.min(last)]);
        if !e.is_busy() || tokio::time::Instant::now() + pause > deadline {
            return Some(result);
        }
        self.tries += 1;
        tokio::time::sleep(pause).await;
        None
    }
}

/// A request to a remote server, bounded by [`REMOTE_TIMEOUT`]. When it times out the request
/// is dropped (its connection closed); whether the server applied it is unknown, as after any
/// lost answer: every write here is guarded (a lease, a claim, an idempotency key) for that.
pub(crate) async fn remote<T>(
    request: impl Future<Output = Result<T, libsql::Error>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(REMOTE_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DbError::Timeout(REMOTE_TIMEOUT)),
    }
}

/// One statement of a [`transaction`]: its SQL and positional parameters.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: Cow<'static, str>,
    pub params: Vec<Value>,
}

impl Stmt {
    pub fn new(
        sql: impl Into<Cow<'static, str>>,
        params: impl IntoParams,
    ) -> Result<Self, DbError> {
        Ok(Self {
            sql: sql.into(),
            params: positional(params)?,
        })
    }
}

fn positional(params: impl IntoParams) -> Result<Vec<Value>, DbError> {
    match params.into_params()? {
        Params::None => Ok(Vec::new()),
        Params::Positional(values) => Ok(values),
        Params::Named(_) => Err(DbError::Statement(
            "named parameters are not supported; use ?1, ?2, …".into(),
        )),
    }
}

/// A row read out of its statement: what a [`transaction`] returns per statement.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl OwnedRow {
    fn read(row: &Row, names: &mut Option<Arc<[String]>>) -> Result<Self, DbError> {
        let count = row.column_count();
        let names = names
            .get_or_insert_with(|| {
                (0..count)
                    .map(|i| row.column_name(i).unwrap_or("?").to_owned())
                    .collect()
            })
            .clone();
        let values = (0..count)
            .map(|i| row.get_value(i))
            .collect::<Result<_, _>>()?;
        Ok(Self { names, values })
    }
}

/// Where the column readers ([`int`], [`text`], …) read from: a live [`Row`] or an [`OwnedRow`].
pub trait Columns {
    fn value(&self, idx: i32) -> Result<Value, DbError>;
    fn name(&self, idx: i32) -> &str;
}

impl Columns for Row {
    fn value(&self, idx: i32) -> Result<Value, DbError> {
        Ok(self.get_value(idx)?)
    }

    fn name(&self, idx: i32) -> &str {
        self.column_name(idx).unwrap_or("?")
    }
}

impl Columns for OwnedRow {
    fn value(&self, idx: i32) -> Result<Value, DbError> {
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.values.get(i))
            .cloned()
            .ok_or_else(|| DbError::Corrupt(format!("no column {idx} in the row")))
    }

    fn name(&self, idx: i32) -> &str {
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.names.get(i))
            .map_or("?", String::as_str)
    }
}

/// Runs `steps` as one transaction (`BEGIN IMMEDIATE` … `COMMIT`): every statement or none.
/// Returns each statement's rows. A local file runs them one by one on this connection, with
/// the statements prepared once per connection; a remote server gets them as one batch, one
/// round trip, each step run only if the one before succeeded. Retried while the database is
/// busy (a busy failure has written nothing).
///
/// A step that must not run unless an earlier one changed a row says so in its SQL
/// (`… WHERE changes() = 1`), or aborts the whole transaction through the `write_guards` view
/// ([`GUARD_SQL`]): there is no round trip between steps to decide in.
pub async fn transaction(
    conn: &PooledConnection,
    steps: &[Stmt],
) -> Result<Vec<Vec<OwnedRow>>, DbError> {
    retry_busy(|| async move {
        if conn.remote {
            remote_transaction(conn, steps).await
        } else {
            local_transaction(conn, steps).await
        }
    })
    .await
}

/// A step of a [`transaction`] that aborts it (rolls every step back) unless the statement before
/// it changed exactly one row. Its error is recognised by [`DbError::is_guard`].
pub const GUARD_SQL: &str = "INSERT INTO write_guards (held) SELECT changes() = 1";

async fn local_transaction(
    conn: &PooledConnection,
    steps: &[Stmt],
) -> Result<Vec<Vec<OwnedRow>>, DbError> {
    execute(conn, "BEGIN IMMEDIATE", ()).await?;
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let mut names = None;
        let rows = query_cached(conn, &step.sql, step.params.clone(), |r| {
            OwnedRow::read(r, &mut names)
        })
        .await;
        match rows {
            Ok(rows) => out.push(rows),
            Err(e) => {
                rollback(conn).await;
                return Err(e);
            }
        }
    }
    if let Err(e) = conn.execute("COMMIT", ()).await {
        rollback(conn).await;
        return Err(e.into());
    }
    Ok(out)
}

async fn rollback(conn: &PooledConnection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute("ROLLBACK", ()).await {
            tracing::warn!(error = %e, "rollback failed; the connection is closed, not reused");
        }
    }
}

async fn remote_transaction(
    conn: &PooledConnection,
    steps: &[Stmt],
) -> Result<Vec<Vec<OwnedRow>>, DbError> {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for step in steps {
        sql.push_str(&inline(&step.sql, &step.params)?);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT");
    let mut batch = remote(conn.execute_batch(&sql)).await?;
    let _begin = batch.next_stmt_row();
    let mut out = Vec::with_capacity(steps.len());
    for _ in steps {
        let rows = batch
            .next_stmt_row()
            .flatten()
            .ok_or_else(|| DbError::Corrupt("a step of the batch returned no result".into()))?;
        let mut names = None;
        out.push(read_all(rows, |r| OwnedRow::read(r, &mut names)).await?);
    }
    Ok(out)
}

/// One statement as a one-step Hrana batch: a single round trip.
async fn remote_query(
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
) -> Result<Rows, DbError> {
    let sql = inline(sql, &positional(params)?)?;
    remote(conn.execute_batch(&sql))
        .await?
        .next_stmt_row()
        .flatten()
        .ok_or_else(|| DbError::Corrupt("the statement returned no result".into()))
}

/// `sql` with its parameters (`?NNN` or `?`) written in as SQL literals, for a remote batch,
/// which libsql 0.10 sends without parameters. Text is a quoted literal (quotes doubled; text
/// holding a NUL byte is written as hex), blobs hex, numbers in full, each with spaces around
/// it so no literal can join a neighbouring token (`-` `-5` is not a comment). String literals,
/// quoted identifiers and comments in `sql` are copied as they are. A trailing `;` is dropped:
/// one statement in, one statement out.
pub fn inline(sql: &str, params: &[Value]) -> Result<String, DbError> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut next = 0usize; // the index a bare `?` takes: one past the largest so far
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                out.push_str(&sql[copied..i]);
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                let index = if end > start {
                    let n: usize = sql[start..end]
                        .parse()
                        .map_err(|_| DbError::Statement(format!("bad parameter in: {sql}")))?;
                    next = next.max(n);
                    n
                } else {
                    next += 1;
                    next
                };
                let value = index
                    .checked_sub(1)
                    .and_then(|i| params.get(i))
                    .ok_or_else(|| {
                        DbError::Statement(format!(
                            "parameter ?{index} has no value ({} given) in: {sql}",
                            params.len()
                        ))
                    })?;
                out.push(' ');
                literal(&mut out, value);
                out.push(' ');
                i = end;
                copied = end;
            }
            b':' | b'@' | b'$'
                if bytes
                    .get(i + 1)
                    .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') =>
            {
                return Err(DbError::Statement(format!(
                    "named parameters are not supported: {sql}"
                )));
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    let trimmed = out.trim_end().trim_end_matches(';').trim_end().len();
    out.truncate(trimmed);
    Ok(out)
}

fn literal(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Integer(i64::MIN) => out.push_str("(-9223372036854775807 - 1)"),
        Value::Integer(v) if *v < 0 => {
            let _ = write!(out, "({v})");
        }
        Value::Integer(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Real(v) if v.is_nan() => out.push_str("NULL"),
        Value::Real(v) if v.is_infinite() => {
            out.push_str(if *v > 0.0 { "9e999" } else { "(-9e999)" })
        }
        // `{:?}` prints the shortest text that reads back to the same f64, always with a `.` or
        // an exponent, so SQLite reads it as REAL.
        Value::Real(v) if *v < 0.0 => {
            let _ = write!(out, "({v:?})");
        }
        Value::Real(v) => {
            let _ = write!(out, "{v:?}");
        }
        Value::Text(t) if t.contains('\0') => {
            out.push_str("CAST(");
            hex(out, t.as_bytes());
            out.push_str(" AS TEXT)");
        }
        Value::Text(t) => {
            out.push('\'');
            out.push_str(&t.replace('\'', "''"));
            out.push('\'');
        }
        Value::Blob(b) => hex(out, b),
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    out.push_str("X'");
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out.push('\'');
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
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnMut(&Row) -> Result<T, DbError>,
) -> Result<Option<T>, DbError> {
    Ok(query_all(conn, sql, params, map).await?.into_iter().next())
}

/// Exactly one row.
pub async fn query_one<T>(
    conn: &PooledConnection,
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
    conn: &PooledConnection,
    sql: &str,
    params: impl IntoParams,
) -> Result<bool, DbError> {
    Ok(query_opt(conn, sql, params, |r| int(r, 0)).await?.is_some())
}

/// Retries `op` a few times, with jittered back-off, while the database answers busy.
/// A local statement's wait for the lock ([`BusyWait`]) is not first-come-first-served, so a
/// writer can be starved past its timeout; this bounded retry is the second line of defence.
/// `op` must be atomic (a single statement or a whole transaction), so a busy failure has
/// written nothing.
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

fn type_error(row: &dyn Columns, idx: i32, want: &str, got: &Value) -> DbError {
    let name = row.name(idx);
    DbError::Corrupt(format!("column {name}: expected {want}, found {got:?}"))
}

pub fn int(row: &dyn Columns, idx: i32) -> Result<i64, DbError> {
    match row.value(idx)? {
        Value::Integer(v) => Ok(v),
        other => Err(type_error(row, idx, "an integer", &other)),
    }
}

pub fn opt_int(row: &dyn Columns, idx: i32) -> Result<Option<i64>, DbError> {
    match row.value(idx)? {
        Value::Null => Ok(None),
        Value::Integer(v) => Ok(Some(v)),
        other => Err(type_error(row, idx, "an integer or NULL", &other)),
    }
}

/// A REAL column (SQLite may hand back an INTEGER for a whole number: both are accepted).
pub fn real(row: &dyn Columns, idx: i32) -> Result<f64, DbError> {
    match row.value(idx)? {
        Value::Real(v) => Ok(v),
        Value::Integer(v) => Ok(v as f64),
        other => Err(type_error(row, idx, "a number", &other)),
    }
}

pub fn text(row: &dyn Columns, idx: i32) -> Result<String, DbError> {
    match row.value(idx)? {
        Value::Text(v) => Ok(v),
        other => Err(type_error(row, idx, "text", &other)),
    }
}

pub fn opt_text(row: &dyn Columns, idx: i32) -> Result<Option<String>, DbError> {
    match row.value(idx)? {
        Value::Null => Ok(None),
        Value::Text(v) => Ok(Some(v)),
        other => Err(type_error(row, idx, "text or NULL", &other)),
    }
}

pub fn timestamp(row: &dyn Columns, idx: i32) -> Result<DateTime<Utc>, DbError> {
    let raw = text(row, idx)?;
    crate::time::parse(&raw).map_err(|e| DbError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

pub fn opt_timestamp(row: &dyn Columns, idx: i32) -> Result<Option<DateTime<Utc>>, DbError> {
    match opt_text(row, idx)? {
        None => Ok(None),
        Some(raw) => crate::time::parse(&raw)
            .map(Some)
            .map_err(|e| DbError::Corrupt(format!("timestamp {raw:?}: {e}"))),
    }
}

pub fn json(row: &dyn Columns, idx: i32) -> Result<serde_json::Value, DbError> {
    let raw = text(row, idx)?;
    serde_json::from_str(&raw).map_err(|e| DbError::Corrupt(format!("JSON column: {e}")))
}

pub fn opt_json(row: &dyn Columns, idx: i32) -> Result<Option<serde_json::Value>, DbError> {
    match opt_text(row, idx)? {
        None => Ok(None),
        Some(raw) => serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| DbError::Corrupt(format!("JSON column: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(message: &str) -> DbError {
        DbError::Sql(libsql::Error::Hrana(message.to_owned().into()))
    }

    #[test]
    fn a_remote_sql_error_is_not_an_outage_but_a_server_not_ready_is() {
        let constraint = remote("api error: `SQLite error: UNIQUE constraint failed: users.email`");
        assert!(!constraint.is_unavailable());
        let starting = remote(
            "api error: `status=404 Not Found, body={\"error\":\"Namespace `default` doesn't exist\"}`",
        );
        assert!(starting.is_unavailable());
        let timed_out = remote("api error: `Transaction timed out`");
        assert!(timed_out.is_unavailable());
        let refused = remote("http error: `error trying to connect: tcp connect error`");
        assert!(refused.is_unavailable());
        let busy = remote("api error: `SQLite error: database is locked`");
        assert!(busy.is_unavailable() && busy.is_busy());
    }
}
