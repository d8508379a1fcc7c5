//! Timestamps: UTC, RFC 3339, one fixed width (`2026-11-25T08:30:00.123Z`).
//!
//! Every timestamp the database holds is written here, so text order is time order (the queue
//! compares `run_after` and `lease_expires_at` as TEXT) and the API shows the same strings.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Where "now" comes from: the system's clock, or (for tests) the system's clock moved by an
/// offset that can be changed while the code runs, shared by every clone. Each [`crate::db::Db`]
/// carries one, and every timestamp written to or compared in the database is read from it
/// ([`crate::db::PooledConnection::now`]), so a test moves a lease or an upload past its deadline
/// without waiting for it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system's time and moves on with it, and that
    /// [`Clock::advance`] and [`Clock::rewind`] move.
    pub fn adjustable() -> Self {
        Self {
            offset_ms: Some(Arc::default()),
        }
    }

    /// The current instant, truncated to the millisecond the database keeps.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self
            .offset_ms
            .as_ref()
            .map_or(0, |o| o.load(Ordering::SeqCst));
        truncate(Utc::now() + chrono::Duration::milliseconds(offset))
    }

    /// Moves an [adjustable](Clock::adjustable) clock forward by `by`.
    ///
    /// # Panics
    /// On the system's clock, which only time moves.
    pub fn advance(&self, by: Duration) {
        self.shift(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }

    /// Moves an [adjustable](Clock::adjustable) clock back by `by`.
    ///
    /// # Panics
    /// On the system's clock, which only time moves.
    pub fn rewind(&self, by: Duration) {
        self.shift(-i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }

    fn shift(&self, ms: i64) {
        let offset = self
            .offset_ms
            .as_ref()
            .expect("only an adjustable clock can be moved");
        offset.fetch_add(ms, Ordering::SeqCst);
    }
}

/// `ts` truncated to the millisecond the database keeps.
pub fn truncate(ts: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ts.timestamp_millis()).unwrap_or(ts)
}

/// The stored and displayed form: RFC 3339, UTC, milliseconds, `Z`.
pub fn format(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a stored timestamp back.
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_fixed_width_utc_and_round_trips() {
        let t = DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        let s = format(t);
        assert_eq!(s, "2026-11-18T11:06:40.000Z");
        assert_eq!(parse(&s).unwrap(), t);
    }

    #[test]
    fn an_adjustable_clock_moves_for_every_clone_and_the_system_clock_does_not_offset() {
        let clock = Clock::adjustable();
        let clone = clock.clone();
        let before = Clock::system().now();

        clone.advance(Duration::from_secs(3600));
        let ahead = clock.now();
        clock.rewind(Duration::from_secs(7200));
        let behind = clone.now();

        assert!(
            ahead - before >= chrono::Duration::seconds(3600),
            "{before} {ahead}"
        );
        assert!(
            ahead - before < chrono::Duration::seconds(3610),
            "{before} {ahead}"
        );
        assert!(
            before - behind >= chrono::Duration::seconds(3590),
            "{before} {behind}"
        );
        assert!(
            before - behind <= chrono::Duration::seconds(3600),
            "{before} {behind}"
        );
    }

    #[test]
    fn text_order_is_time_order() {
        let a = format(DateTime::from_timestamp_millis(999).unwrap());
        let b = format(DateTime::from_timestamp_millis(1_000).unwrap());
        let c = format(DateTime::from_timestamp_millis(10_000).unwrap());
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}

/// `#[serde(with = "crate::time::rfc3339")]` for timestamps in API bodies.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The same for `Option<DateTime<Utc>>`.
pub mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => s.serialize_str(&super::format(*ts)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|raw| super::parse(&raw).map_err(serde::de::Error::custom))
            .transpose()
    }
}
