//! Schema migrations: the numbered SQL files of `migrations/`, embedded in every binary.
//!
//! Each is applied once, in order, inside one `BEGIN IMMEDIATE` transaction that also records
//! its SHA-256. A re-run is a no-op (a read, no write lock); an applied migration whose text has
//! changed is refused; two cold starts migrating at once serialise on the write lock, and the
//! second finds nothing left to do.

use libsql::{Connection, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::db::{self, retry_busy, DbError};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Every migration, in order. A new file in `migrations/` gets a line here (a test checks).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_idempotency_and_history",
        sql: include_str!("../../migrations/0002_idempotency_and_history.sql"),
    },
    Migration {
        version: 3,
        name: "0003_uploads",
        sql: include_str!("../../migrations/0003_uploads.sql"),
    },
];

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Applies every pending migration; returns the versions it applied (empty when up to date).
pub async fn migrate(conn: &Connection) -> Result<Vec<i64>, DbError> {
    migrate_with(conn, MIGRATIONS).await
}

/// [`migrate`] with a given list (tests use it to simulate an edited migration).
pub async fn migrate_with(
    conn: &Connection,
    migrations: &[Migration],
) -> Result<Vec<i64>, DbError> {
    // Fast path without the write lock: everything is applied already.
    if pending(conn, migrations).await?.is_empty() {
        return Ok(Vec::new());
    }
    retry_busy(|| async move {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
        tx.execute(CREATE_LEDGER, ()).await?;
        let todo = pending(&tx, migrations).await?;
        for m in &todo {
            tx.execute_batch(m.sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
                (m.version, m.name, m.checksum(), crate::time::format(crate::time::now())),
            )
            .await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        tx.commit().await?;
        Ok(todo.iter().map(|m| m.version).collect())
    })
    .await
}

/// The migrations not yet applied; refuses an applied migration whose text changed.
async fn pending<'a>(
    conn: &Connection,
    migrations: &'a [Migration],
) -> Result<Vec<&'a Migration>, DbError> {
    let has_ledger = db::query_one(
        conn,
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'",
        (),
        |r| db::int(r, 0),
    )
    .await?
        > 0;
    let applied = if has_ledger {
        db::query_all(
            conn,
            "SELECT version, name, checksum FROM schema_migrations",
            (),
            |r| Ok((db::int(r, 0)?, db::text(r, 1)?, db::text(r, 2)?)),
        )
        .await?
    } else {
        Vec::new()
    };
    let mut todo = Vec::new();
    for m in migrations {
        match applied.iter().find(|(v, _, _)| *v == m.version) {
            Some((_, _, stored)) if *stored != m.checksum() => {
                return Err(DbError::MigrationEdited {
                    name: m.name.to_owned(),
                    stored: stored.clone(),
                    embedded: m.checksum(),
                })
            }
            Some(_) => {}
            None => todo.push(m),
        }
    }
    Ok(todo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_migrations_folder_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        assert_eq!(files, embedded);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version,
                i as i64 + 1,
                "versions are 1, 2, 3, ... in order"
            );
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
