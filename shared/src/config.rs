//! Typed configuration, read once at start-up from the environment.
//!
//! Every variable has one reader here; a missing or malformed variable stops start-up with a
//! [`ConfigError`] that names it. Tests build configuration from plain pairs with [`Env::from_pairs`].

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration: environment variable {name} is required but not set")]
    Missing { name: &'static str },
    #[error("configuration: environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where configuration values come from: the process environment or, in tests, a map.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// A set, non-blank value (surrounding whitespace removed).
    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing { name })
    }

    /// Parses a value, or returns `default` when it is not set.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: format!("{raw:?}: {e}"),
            }),
        }
    }

    /// A whole number within `range`, or `default`.
    pub fn int_in(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let value = self.parse_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                name,
                reason: format!("{value} is outside {}..={}", range.start(), range.end()),
            })
        }
    }

    /// A duration given in (possibly fractional) seconds, greater than zero and at most `max_secs`.
    pub fn seconds(
        &self,
        name: &'static str,
        default_secs: f64,
        max_secs: f64,
    ) -> Result<Duration, ConfigError> {
        let secs: f64 = self.parse_or(name, default_secs)?;
        if secs.is_finite() && secs > 0.0 && secs <= max_secs {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(ConfigError::Invalid {
                name,
                reason: format!(
                    "{secs} must be a number of seconds above 0 and at most {max_secs}"
                ),
            })
        }
    }

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::Invalid {
                name,
                reason: format!("{v:?} is not true/false"),
            }),
        }
    }
}

/// Which database `DATABASE_URL` names: a local SQLite file or a remote libSQL server.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `file:path/to/db.sqlite` (relative or absolute) or `file:///abs/path`.
    File(PathBuf),
    /// `libsql://`, `https://` or `http://` (a local `sqld`), with `DATABASE_AUTH_TOKEN`.
    Remote { url: String, auth_token: String },
}

impl fmt::Debug for DatabaseUrl {
    // The token is a secret: never in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Remote { url, .. } => f
                .debug_struct("Remote")
                .field("url", url)
                .finish_non_exhaustive(),
        }
    }
}

impl DatabaseUrl {
    /// Parses `DATABASE_URL` (and, for remote URLs, its token).
    pub fn parse(raw: &str, auth_token: Option<String>) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: reason.to_owned(),
        };
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("file:") {
            // file:///abs, file://localhost/abs, file:relative, file:/abs
            let path = match rest.strip_prefix("//") {
                Some(after) => {
                    let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                    if !(host.is_empty() || host == "localhost") {
                        return Err(invalid("a file: URL cannot name a host"));
                    }
                    path
                }
                None => rest,
            };
            let path = path.split(['?', '#']).next().unwrap_or_default();
            if path.is_empty() {
                return Err(invalid(
                    "a file: URL needs a path, e.g. file:local/data/viralclip.db",
                ));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        let scheme = raw.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("libsql" | "https" | "http") => {
                let host = raw.split_once("://").map(|(_, r)| r).unwrap_or_default();
                if host.is_empty() || host.starts_with('/') {
                    return Err(invalid("the URL has no host"));
                }
                let auth_token = auth_token.unwrap_or_default();
                // A plain-http URL is a local sqld, which may run without auth; anything
                // reaching over the network must carry a token.
                if auth_token.is_empty() && scheme.as_deref() != Some("http") {
                    return Err(ConfigError::Missing { name: "DATABASE_AUTH_TOKEN" });
                }
                Ok(Self::Remote { url: raw.to_owned(), auth_token })
            }
            _ => Err(invalid(
                "expected file:<path> for a local SQLite file, or libsql://, https:// or http:// for a libSQL server",
            )),
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::parse(
            &env.required("DATABASE_URL")?,
            env.optional("DATABASE_AUTH_TOKEN"),
        )
    }
}

/// The queue's timing: leases and back-off. (A job's attempts are stored with it when it is
/// created: `JOB_MAX_ATTEMPTS`, in the ingest settings.)
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// How long a claim holds a job without a heartbeat (`JOB_LEASE_SECONDS`, default 30).
    pub lease: Duration,
    /// First retry delay (`JOB_RETRY_BASE_SECONDS`, default 5); doubles per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest retry delay (`JOB_RETRY_MAX_SECONDS`, default 300).
    pub retry_max: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
        }
    }
}

impl QueueConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            lease: env.seconds("JOB_LEASE_SECONDS", d.lease.as_secs_f64(), 3600.0)?,
            retry_base: env.seconds(
                "JOB_RETRY_BASE_SECONDS",
                d.retry_base.as_secs_f64(),
                86_400.0,
            )?,
            retry_max: env.seconds("JOB_RETRY_MAX_SECONDS", d.retry_max.as_secs_f64(), 86_400.0)?,
        })
    }
}

/// The worker function's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Pause between polls of an empty queue (`POLL_INTERVAL_SECONDS`, default 5).
    pub poll_interval: Duration,
    /// Jobs run at once by one invocation (`WORKER_CONCURRENCY`, default 4).
    pub concurrency: usize,
    /// Longest an invocation runs where the platform sets no deadline, and a cap on it where it
    /// does (`WORKER_MAX_RUN_SECONDS`, default 55: a `rate(1 minute)` schedule never overlaps much).
    pub max_run: Duration,
    /// Return as soon as the queue is empty and nothing runs (`WORKER_STOP_WHEN_IDLE`, default
    /// false): for a local ticker that invokes the worker every few seconds.
    pub stop_when_idle: bool,
    pub queue: QueueConfig,
}

impl WorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            poll_interval: env.seconds("POLL_INTERVAL_SECONDS", 5.0, 3600.0)?,
            concurrency: env.int_in("WORKER_CONCURRENCY", 4, 1..=256)? as usize,
            max_run: env.seconds("WORKER_MAX_RUN_SECONDS", 55.0, 900.0)?,
            stop_when_idle: env.flag("WORKER_STOP_WHEN_IDLE", false)?,
            queue: QueueConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_in_every_common_form_name_a_local_file() {
        for (raw, path) in [
            ("file:local/data/app.db", "local/data/app.db"),
            ("file:/tmp/app.db", "/tmp/app.db"),
            ("file:///tmp/app.db", "/tmp/app.db"),
            ("file://localhost/tmp/app.db", "/tmp/app.db"),
            ("file:app.db?mode=rwc", "app.db"),
        ] {
            assert_eq!(
                DatabaseUrl::parse(raw, None),
                Ok(DatabaseUrl::File(path.into())),
                "{raw}"
            );
        }
    }

    #[test]
    fn remote_urls_carry_their_token() {
        let url = DatabaseUrl::parse("libsql://db-org.turso.io", Some("tok".into())).unwrap();
        assert_eq!(
            url,
            DatabaseUrl::Remote {
                url: "libsql://db-org.turso.io".into(),
                auth_token: "tok".into()
            }
        );
        assert!(
            !format!("{url:?}").contains("tok"),
            "the token never shows in Debug output"
        );
        // a local sqld over plain http may run without a token
        assert!(DatabaseUrl::parse("http://127.0.0.1:8080", None).is_ok());
    }

    #[test]
    fn remote_urls_over_the_network_require_a_token() {
        for raw in ["libsql://db.turso.io", "https://db.example.com"] {
            assert_eq!(
                DatabaseUrl::parse(raw, None),
                Err(ConfigError::Missing {
                    name: "DATABASE_AUTH_TOKEN"
                })
            );
        }
    }

    #[test]
    fn unknown_schemes_and_empty_paths_are_refused_naming_the_variable() {
        for raw in [
            "postgres://x/y",
            "app.db",
            "file:",
            "file://otherhost/x.db",
            "libsql://",
            "",
        ] {
            let err = DatabaseUrl::parse(raw, Some("t".into())).unwrap_err();
            assert!(err.to_string().contains("DATABASE_URL"), "{raw}: {err}");
        }
    }

    #[test]
    fn worker_config_has_defaults_and_names_a_bad_variable() {
        let cfg = WorkerConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(cfg.concurrency, 4);
        assert_eq!(cfg.queue.lease, Duration::from_secs(30));
        assert_eq!(cfg.poll_interval, Duration::from_secs(5));

        let err =
            WorkerConfig::from_env(&Env::from_pairs([("WORKER_CONCURRENCY", "lots")])).unwrap_err();
        assert!(err.to_string().contains("WORKER_CONCURRENCY"), "{err}");
        let err =
            WorkerConfig::from_env(&Env::from_pairs([("POLL_INTERVAL_SECONDS", "0")])).unwrap_err();
        assert!(err.to_string().contains("POLL_INTERVAL_SECONDS"), "{err}");
        let err = DatabaseUrl::from_env(&Env::from_pairs([])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "DATABASE_URL"
            }
        );
    }
}
