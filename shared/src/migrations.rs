//! Schema migrations: the numbered SQL files of `migrations/`, embedded in every binary.
//!
//! Each is applied once, in order; the pending ones are applied in one `BEGIN IMMEDIATE`
//! transaction that also records each one's SHA-256 (one batch, one round trip, on a remote
//! server). A re-run is one read of the ledger and nothing more: that is what a cold start
//! costs once the schema is current. An applied migration whose text has changed is refused;
//! two cold starts migrating at once serialise on the write lock, and the second finds nothing
//! left to do.

use crate::db::{self, retry_busy, DbError, PooledConnection};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
    /// SHA-256 of `sql` in lower-case hex, computed when the binary is compiled.
    checksum: [u8; 64],
}

impl Migration {
    /// A migration and its checksum (in a `const`, computed at compile time: a cold start
    /// does not hash the SQL again).
    pub const fn new(version: i64, name: &'static str, sql: &'static str) -> Self {
        Self {
            version,
            name,
            sql,
            checksum: sha256_hex(sql.as_bytes()),
        }
    }

    /// SHA-256 of the SQL, as the ledger stores it.
    pub fn checksum(&self) -> &str {
        std::str::from_utf8(&self.checksum).expect("hex digits are ASCII")
    }
}

/// Every migration, in order. A new file in `migrations/` gets a line here (a test checks).
pub const MIGRATIONS: &[Migration] = &[
    Migration::new(
        1,
        "0001_init",
        include_str!("../../migrations/0001_init.sql"),
    ),
    Migration::new(
        2,
        "0002_idempotency_and_history",
        include_str!("../../migrations/0002_idempotency_and_history.sql"),
    ),
    Migration::new(
        3,
        "0003_uploads",
        include_str!("../../migrations/0003_uploads.sql"),
    ),
    Migration::new(
        4,
        "0004_write_guards",
        include_str!("../../migrations/0004_write_guards.sql"),
    ),
    Migration::new(
        5,
        "0005_delete_retry_and_fair_claims",
        include_str!("../../migrations/0005_delete_retry_and_fair_claims.sql"),
    ),
    Migration::new(
        6,
        "0006_abuse_limits",
        include_str!("../../migrations/0006_abuse_limits.sql"),
    ),
];

/// SHA-256 (FIPS 180-4) of `data` as 64 lower-case hex digits, usable in a `const`.
const fn sha256_hex(data: &[u8]) -> [u8; 64] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    // The message, then 0x80, zeros, and its length in bits (big-endian), to a multiple of 64.
    let padded_len = (data.len() + 9).div_ceil(64) * 64;
    let bit_len = (data.len() as u64).wrapping_mul(8);
    const fn byte_at(data: &[u8], padded_len: usize, bit_len: u64, i: usize) -> u8 {
        if i < data.len() {
            data[i]
        } else if i == data.len() {
            0x80
        } else if i >= padded_len - 8 {
            (bit_len >> (8 * (padded_len - 1 - i))) as u8
        } else {
            0
        }
    }
    let mut block = 0;
    while block < padded_len {
        let mut w = [0u32; 64];
        let mut t = 0;
        while t < 16 {
            let i = block + 4 * t;
            let mut word = 0u32;
            let mut k = 0;
            while k < 4 {
                word = (word << 8) | byte_at(data, padded_len, bit_len, i + k) as u32;
                k += 1;
            }
            w[t] = word;
            t += 1;
        }
        while t < 64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
            t += 1;
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        t = 0;
        while t < 64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[t])
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
            t += 1;
        }
        let add = [a, b, c, d, e, f, g, hh];
        let mut i = 0;
        while i < 8 {
            h[i] = h[i].wrapping_add(add[i]);
            i += 1;
        }
        block += 64;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    let mut i = 0;
    while i < 32 {
        let byte = (h[i / 4] >> (24 - 8 * (i % 4))) as u8;
        out[2 * i] = HEX[(byte >> 4) as usize];
        out[2 * i + 1] = HEX[(byte & 0xf) as usize];
        i += 1;
    }
    out
}

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Applies every pending migration; returns the versions it applied (empty when up to date).
pub async fn migrate(conn: &PooledConnection) -> Result<Vec<i64>, DbError> {
    migrate_with(conn, MIGRATIONS).await
}

/// [`migrate`] with a given list (tests use it to simulate an edited migration).
pub async fn migrate_with(
    conn: &PooledConnection,
    migrations: &[Migration],
) -> Result<Vec<i64>, DbError> {
    // One read: everything is applied already (the usual cold start).
    let todo = pending(conn, migrations).await?;
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let applied = retry_busy(|| apply(conn, migrations)).await;
    match applied {
        Ok(versions) => Ok(versions),
        // Another cold start applied them first (a remote batch cannot re-check under the
        // lock): fine when nothing is left to do.
        Err(e) if pending(conn, migrations).await?.is_empty() => {
            tracing::info!(error = %e, "migrations were applied by another process");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// The pending migrations, applied in one transaction with their ledger rows.
async fn apply(conn: &PooledConnection, migrations: &[Migration]) -> Result<Vec<i64>, DbError> {
    let now = crate::time::format(conn.now());
    if conn.is_remote() {
        // The ledger as it is now, then every pending script and its ledger row in one batch.
        let todo = pending(conn, migrations).await?;
        let mut sql = format!("BEGIN IMMEDIATE;\n{CREATE_LEDGER};\n");
        for m in &todo {
            sql.push_str(m.sql);
            sql.push_str(";\n");
            sql.push_str(&db::inline(
                RECORD,
                &[
                    m.version.into(),
                    m.name.into(),
                    m.checksum().into(),
                    now.clone().into(),
                ],
            )?);
            sql.push_str(";\n");
        }
        sql.push_str("COMMIT");
        db::remote(conn.execute_batch(&sql)).await?;
        log_applied(&todo);
        return Ok(todo.iter().map(|m| m.version).collect());
    }
    db::execute(conn, "BEGIN IMMEDIATE", ()).await?;
    let result = async {
        conn.execute(CREATE_LEDGER, ()).await?;
        let todo = pending(conn, migrations).await?;
        for m in &todo {
            conn.execute_batch(m.sql).await?;
            conn.execute(RECORD, (m.version, m.name, m.checksum(), now.clone()))
                .await?;
        }
        conn.execute("COMMIT", ()).await?;
        Ok::<_, DbError>(todo)
    }
    .await;
    match result {
        Ok(todo) => {
            log_applied(&todo);
            Ok(todo.iter().map(|m| m.version).collect())
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute("ROLLBACK", ()).await;
            }
            Err(e)
        }
    }
}

fn log_applied(todo: &[&Migration]) {
    for m in todo {
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
}

const RECORD: &str =
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)";

/// The migrations not yet applied (one read of the ledger); refuses an applied migration whose
/// text changed.
async fn pending<'a>(
    conn: &PooledConnection,
    migrations: &'a [Migration],
) -> Result<Vec<&'a Migration>, DbError> {
    let applied = match db::query_all(
        conn,
        "SELECT version, name, checksum FROM schema_migrations",
        (),
        |r| Ok((db::int(r, 0)?, db::text(r, 1)?, db::text(r, 2)?)),
    )
    .await
    {
        Ok(applied) => applied,
        // A database never migrated has no ledger yet.
        Err(e) if e.to_string().contains("no such table") => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut todo = Vec::new();
    for m in migrations {
        match applied.iter().find(|(v, _, _)| *v == m.version) {
            Some((_, _, stored)) if *stored != m.checksum() => {
                return Err(DbError::MigrationEdited {
                    name: m.name.to_owned(),
                    stored: stored.clone(),
                    embedded: m.checksum().to_owned(),
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

    #[test]
    fn the_compile_time_checksum_is_sha256_in_hex() {
        use sha2::{Digest, Sha256};
        let hex = |data: &[u8]| -> String {
            Sha256::digest(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        // Around each padding boundary (55/56/64 bytes), and long inputs.
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in (0..=130).chain([191, 192, 255, 256, 300]) {
            let got = sha256_hex(&bytes[..len]);
            assert_eq!(
                std::str::from_utf8(&got).unwrap(),
                hex(&bytes[..len]),
                "{len} bytes"
            );
        }
        assert_eq!(
            Migration::new(9, "9_abc", "abc").checksum(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for m in MIGRATIONS {
            assert_eq!(m.checksum(), hex(m.sql.as_bytes()), "{}", m.name);
        }
    }
}
