//! Timestamps: UTC, RFC 3339, one fixed width (`2026-11-25T08:30:00.123Z`).
//!
//! Every timestamp the database holds is written here, so text order is time order (the queue
//! compares `run_after` and `lease_expires_at` as TEXT) and the API shows the same strings.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current instant, truncated to the millisecond the database keeps.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
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
