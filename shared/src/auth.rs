//! Accounts and tokens: Argon2id password hashes, HS256 JWTs, the one extractor every
//! protected route uses ([`Auth::authenticate`]), and sign-in throttling per email
//! ([`SignInLimit`], checked before any hash).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::db::PooledConnection;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Env};
use crate::error::ApiError;
use crate::http::{bearer_token, Fields};
use crate::repo::sign_in_failures;
use crate::repo::users::{self, User};

/// Shortest accepted `JWT_SECRET`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Clone)]
pub struct AuthConfig {
    secret: Vec<u8>,
    /// Token lifetime (`JWT_EXPIRY_SECONDS`, default 86,400 = 1 day).
    pub token_ttl: Duration,
    /// Failed sign-ins allowed per email before it is throttled.
    pub sign_in: SignInLimit,
}

/// Failed sign-ins of one email: after `max_failures` in the `window` that began with the first
/// of them, further sign-ins of that email answer 429 until the window ends, before any hash is
/// computed. A success clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimit {
    /// `SIGN_IN_MAX_FAILURES` (default 5).
    pub max_failures: u32,
    /// `SIGN_IN_WINDOW_SECONDS` (default 900 = 15 minutes).
    pub window: Duration,
}

impl Default for SignInLimit {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl SignInLimit {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_failures: env.int_in("SIGN_IN_MAX_FAILURES", d.max_failures.into(), 1..=1000)?
                as u32,
            window: Duration::from_secs(env.int_in(
                "SIGN_IN_WINDOW_SECONDS",
                d.window.as_secs(),
                1..=24 * 3600,
            )?),
        })
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token_ttl", &self.token_ttl)
            .field("sign_in", &self.sign_in)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    pub fn new(secret: &[u8], token_ttl: Duration) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: format!(
                    "must be at least {MIN_SECRET_BYTES} bytes (it has {})",
                    secret.len()
                ),
            });
        }
        Ok(Self {
            secret: secret.to_vec(),
            token_ttl,
            sign_in: SignInLimit::default(),
        })
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secret = env.required("JWT_SECRET")?;
        let ttl = env.int_in("JWT_EXPIRY_SECONDS", 86_400, 60..=30 * 86_400)?;
        Ok(Self {
            sign_in: SignInLimit::from_env(env)?,
            ..Self::new(secret.as_bytes(), Duration::from_secs(ttl))?
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

/// Issues and checks tokens.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    sign_in: SignInLimit,
}

/// The body of a successful sign-up or sign-in.
#[derive(Debug, Serialize)]
pub struct Session {
    pub user: User,
    pub token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

impl Auth {
    pub fn new(cfg: &AuthConfig) -> Self {
        // HS256 only: `alg: none` and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(&cfg.secret),
            decoding: DecodingKey::from_secret(&cfg.secret),
            validation,
            ttl: cfg.token_ttl,
            sign_in: cfg.sign_in,
        }
    }

    /// A token for `user_id`, and its lifetime in seconds.
    pub fn issue(&self, user_id: i64) -> Result<(String, u64), ApiError> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, self.ttl.as_secs()))
    }

    /// The user id a token proves; 401 for a forged, expired or malformed token.
    pub fn verify(&self, token: &str) -> Result<i64, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                ApiError::Unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "your session has expired; sign in again".into(),
                    _ => "the token is not valid; sign in again".into(),
                })
            })?;
        data.claims
            .sub
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::Unauthorized("the token is not valid; sign in again".into()))
    }

    /// The extractor of every protected route: the caller's user id from `Authorization: Bearer`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<i64, ApiError> {
        self.verify(bearer_token(headers)?)
    }

    fn session(&self, user: User) -> Result<Session, ApiError> {
        let (token, expires_in) = self.issue(user.id)?;
        Ok(Session {
            user,
            token,
            token_type: "Bearer",
            expires_in,
        })
    }
}

/// Sign-up or sign-in input.
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl Credentials {
    /// Reads the body `{"email", "password"}` (nothing else); `check_rules` applies the sign-up
    /// rules to both (sign-in only needs them present, so a wrong password is a 401, not a 422).
    /// A 422 names every bad or unknown field.
    pub fn parse(
        body: serde_json::Map<String, serde_json::Value>,
        check_rules: bool,
    ) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body);
        let creds = Self::from_fields(&mut fields, check_rules);
        fields.finish()?;
        creds.ok_or_else(|| ApiError::field("email", "is required"))
    }

    fn from_fields(fields: &mut Fields, check_rules: bool) -> Option<Self> {
        let email = fields.required_string("email");
        let password = fields.required_string("password");
        let (email, password) = (email?, password?);
        let email = match normalize_email(&email) {
            Ok(email) => email,
            Err(msg) if check_rules => {
                fields.errors.add("email", msg);
                return None;
            }
            Err(_) => email.trim().to_lowercase(),
        };
        if check_rules {
            if let Err(msg) = check_password(&password) {
                fields.errors.add("password", msg);
                return None;
            }
        }
        Some(Self { email, password })
    }
}

/// Trims and lower-cases an email and checks it looks like an address.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    const RULE: &str = "must be an email address such as name@example.com";
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.chars().count() > 254 {
        return Err("must be an email address of at most 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(RULE);
    };
    let bad_char = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '"' | '[' | ']' | '@'
            )
    };
    let labels_ok = domain
        .split('.')
        .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if local.is_empty()
        || local.chars().count() > 64
        || local.chars().any(bad_char)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !domain.contains('.')
        || !labels_ok
        || domain.chars().any(|c| bad_char(c) || c == '_')
    {
        return Err(RULE);
    }
    Ok(email)
}

/// 8 to 128 characters.
pub fn check_password(password: &str) -> Result<(), &'static str> {
    match password.chars().count() {
        0..=7 => Err("must be at least 8 characters"),
        8..=128 => Ok(()),
        _ => Err("must be at most 128 characters"),
    }
}

/// An Argon2id hash (PHC string) of `password`. CPU-heavy: runs off the async threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(e.to_string().into()))
    })
    .await
    .map_err(ApiError::internal)?
}

static PASSWORD_CHECKS: AtomicU64 = AtomicU64::new(0);

/// How many passwords [`verify_password`] has checked in this process (each an Argon2id hash):
/// what a throttled sign-in must not add to.
pub fn password_checks() -> u64 {
    PASSWORD_CHECKS.load(Ordering::Relaxed)
}

/// Checks `password` against a stored hash (or against a fixed dummy hash when there is no user,
/// so a wrong email costs the same time as a wrong password).
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    PASSWORD_CHECKS.fetch_add(1, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| {
            DUMMY
                .get_or_init(|| {
                    let salt = SaltString::generate(&mut OsRng);
                    Argon2::default()
                        .hash_password(b"no such user", &salt)
                        .map(|h| h.to_string())
                        .unwrap_or_default()
                })
                .clone()
        });
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        Ok(known && ok)
    })
    .await
    .map_err(ApiError::internal)?
}

/// `POST /auth/register`.
pub async fn register(
    conn: &PooledConnection,
    auth: &Auth,
    creds: Credentials,
) -> Result<Session, ApiError> {
    let hash = hash_password(creds.password).await?;
    match users::insert(conn, &creds.email, &hash).await? {
        Some(user) => auth.session(user),
        None => Err(ApiError::Conflict(
            "an account with this email already exists; sign in instead".into(),
        )),
    }
}

/// `POST /auth/login`: one 401 for a wrong email and a wrong password alike. An email with
/// [`SignInLimit::max_failures`] failures in its window gets a 429 until the window ends, known
/// account or not, before any hash is computed; so does nothing else. One read (the account and
/// the email's failures); a failure adds one write, a success one only when it clears failures.
pub async fn login(
    conn: &PooledConnection,
    auth: &Auth,
    creds: Credentials,
) -> Result<Session, ApiError> {
    if normalize_email(&creds.email).is_err() {
        // No account can have it: nothing to hash, nothing to count.
        return Err(wrong_credentials());
    }
    let found = sign_in_failures::find_with_account(conn, &creds.email).await?;
    let limit = auth.sign_in;
    let now = conn.now();
    let window = chrono::Duration::from_std(limit.window).map_err(ApiError::internal)?;
    if let Some(f) = found.failures {
        let ends = f.window_started_at + window;
        if f.count >= limit.max_failures && ends > now {
            return Err(throttled(limit, crate::quota::seconds_until(ends, now)));
        }
    }
    let (user, hash) = found.account.unzip();
    match (verify_password(creds.password, hash).await?, user) {
        (true, Some(user)) => {
            if found.failures.is_some() {
                sign_in_failures::clear(conn, &creds.email).await?;
            }
            auth.session(user)
        }
        _ => {
            sign_in_failures::record(conn, &creds.email, now, now - window).await?;
            Err(wrong_credentials())
        }
    }
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthorized("the email or password is wrong".into())
}

fn throttled(limit: SignInLimit, retry_after_seconds: u64) -> ApiError {
    let minutes = retry_after_seconds.div_ceil(60);
    ApiError::RateLimited {
        message: format!(
            "too many failed sign-ins for this email ({} in {} minutes); try again in {minutes} \
             minute{}",
            limit.max_failures,
            limit.window.as_secs().div_ceil(60),
            if minutes == 1 { "" } else { "s" }
        ),
        limit: "sign_in_failures",
        retry_after_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&AuthConfig::new(&[7u8; 32], Duration::from_secs(3600)).unwrap())
    }

    #[test]
    fn a_short_secret_is_refused_naming_the_variable() {
        let err = AuthConfig::new(b"short", Duration::from_secs(60)).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"));
    }

    #[test]
    fn an_issued_token_verifies_and_a_tampered_one_does_not() {
        let a = auth();
        let (token, ttl) = a.issue(42).unwrap();
        assert_eq!(ttl, 3600);
        assert_eq!(a.verify(&token).unwrap(), 42);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(a.verify(&tampered).is_err());
        let other = Auth::new(&AuthConfig::new(&[8u8; 32], Duration::from_secs(3600)).unwrap());
        assert!(other.verify(&token).is_err(), "another secret refuses it");
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@exa mple.com",
            "ada@.example.com",
            "ada@example..com",
            ".ada@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"é".repeat(128)).is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }
}
