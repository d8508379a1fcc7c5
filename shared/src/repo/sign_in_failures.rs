//! The `sign_in_failures` table: failed sign-ins per email in the window their first one began,
//! read with the account in the sign-in's one statement.

use chrono::{DateTime, Utc};

use crate::db::{self, DbError, PooledConnection};
use crate::repo::users::{self, User};

/// How many pruned rows a failure's write removes at most (windows that ended).
const PRUNE_BATCH: i64 = 100;

/// An email's failed sign-ins of its current (or last) window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub window_started_at: DateTime<Utc>,
}

/// What a sign-in reads before it computes any hash.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The account and its password hash, if the email has one.
    pub account: Option<(User, String)>,
    /// The email's recorded failures, if any.
    pub failures: Option<Failures>,
}

/// The account of `email` and its failures, one statement.
pub async fn find_with_account(conn: &PooledConnection, email: &str) -> Result<SignIn, DbError> {
    let found = db::query_opt(
        conn,
        "SELECT u.id, u.email, u.created_at, u.password_hash, f.failures, f.window_started_at
           FROM (SELECT ?1 AS email) AS asked
           LEFT JOIN users u ON u.email = asked.email
           LEFT JOIN sign_in_failures f ON f.email = asked.email",
        [email],
        |r| {
            let account = match db::opt_int(r, 0)? {
                Some(_) => Some((users::from_row(r)?, db::text(r, 3)?)),
                None => None,
            };
            let failures = match db::opt_int(r, 4)? {
                Some(count) => Some(Failures {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    window_started_at: db::timestamp(r, 5)?,
                }),
                None => None,
            };
            Ok(SignIn { account, failures })
        },
    )
    .await?;
    Ok(found.unwrap_or(SignIn {
        account: None,
        failures: None,
    }))
}

/// Counts a failed sign-in of `email`: one more in its window, or the first of a new window when
/// the last one began at or before `window_ended`. The same transaction removes a few rows whose
/// windows ended. One round trip.
pub async fn record(
    conn: &PooledConnection,
    email: &str,
    now: DateTime<Utc>,
    window_ended: DateTime<Utc>,
) -> Result<(), DbError> {
    let (now, ended) = (crate::time::format(now), crate::time::format(window_ended));
    let steps = [
        db::Stmt::new(
            "INSERT INTO sign_in_failures (email, failures, window_started_at) VALUES (?1, 1, ?2)
             ON CONFLICT (email) DO UPDATE SET
                 failures = CASE WHEN window_started_at <= ?3 THEN 1 ELSE failures + 1 END,
                 window_started_at = CASE WHEN window_started_at <= ?3 THEN ?2
                                          ELSE window_started_at END",
            (email, now, ended.clone()),
        )?,
        db::Stmt::new(
            "DELETE FROM sign_in_failures
              WHERE email IN (SELECT email FROM sign_in_failures INDEXED BY sign_in_failures_window
                               WHERE window_started_at <= ?1 LIMIT ?2)",
            libsql::params![ended, PRUNE_BATCH],
        )?,
    ];
    db::transaction(conn, &steps).await.map(|_| ())
}

/// Forgets the failures of `email` (it signed in).
pub async fn clear(conn: &PooledConnection, email: &str) -> Result<(), DbError> {
    db::execute(
        conn,
        "DELETE FROM sign_in_failures WHERE email = ?1",
        [email],
    )
    .await
    .map(|_| ())
}
