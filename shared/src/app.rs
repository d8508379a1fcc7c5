//! What an HTTP function holds for its whole life: configuration read once, the database
//! opened (and migrated) once, the token keys and the storage client built once per cold start.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::auth::{Auth, AuthConfig};
use crate::config::{ConfigError, DatabaseUrl, Env};
use crate::db::{Db, DbError};
use crate::error::ApiError;
use crate::ingest::IngestConfig;
use crate::storage::{Storage, StorageConfig};
use crate::time::Clock;

/// Which optional parts a function uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub storage: bool,
}

impl Needs {
    pub const DATABASE_ONLY: Self = Self { storage: false };
    pub const STORAGE: Self = Self { storage: true };
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub database: DatabaseUrl,
    pub auth: AuthConfig,
    pub storage: Option<StorageConfig>,
    pub ingest: IngestConfig,
    /// Where the app's time comes from: the system's, or a test's [`Clock::adjustable`].
    pub clock: Clock,
}

impl AppConfig {
    pub fn from_env(env: &Env, needs: Needs) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseUrl::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
            storage: if needs.storage {
                Some(StorageConfig::from_env(env)?)
            } else {
                None
            },
            ingest: IngestConfig::from_env(env)?,
            clock: Clock::system(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
}

pub struct App {
    pub db: Db,
    pub auth: Auth,
    storage: Option<Storage>,
    pub ingest: IngestConfig,
}

impl App {
    /// The database (migrated), the token keys and the ingest settings: every HTTP function's.
    async fn open(cfg: &AppConfig) -> Result<Self, StartupError> {
        let db = Db::open(&cfg.database).await?.with_clock(cfg.clock.clone());
        crate::migrations::migrate(&db.connect().await?).await?;
        Ok(Self {
            db,
            auth: Auth::new(&cfg.auth),
            storage: None,
            ingest: cfg.ingest.clone(),
        })
    }

    /// An app from a whole configuration (tests build theirs); connects storage when it has one.
    pub async fn new(cfg: AppConfig) -> Result<Self, StartupError> {
        let mut app = Self::open(&cfg).await?;
        if let Some(s) = &cfg.storage {
            app.storage = Some(Storage::connect(s).await);
        }
        tracing::info!(database = ?cfg.database, storage = ?cfg.storage, "function ready");
        Ok(app)
    }

    /// [`App::new`] for a configuration without storage, in code that never reaches the S3 client.
    async fn without_storage(cfg: AppConfig) -> Result<Self, StartupError> {
        let app = Self::open(&cfg).await?;
        tracing::info!(database = ?cfg.database, "function ready");
        Ok(app)
    }

    /// The storage client (for functions started with [`Starting::with_storage_from_env`]).
    pub fn storage(&self) -> Result<&Storage, crate::error::ApiError> {
        self.storage.as_ref().ok_or_else(|| {
            crate::error::ApiError::Internal("this function has no storage configured".into())
        })
    }
}

type Opening<T> = Pin<Box<dyn Future<Output = Result<T, StartupError>> + Send>>;

/// What a function holds (its [`App`], the worker's state), opening in the background while its
/// runtime asks Lambda for the first event. The configuration is read at once, so a bad one still
/// stops the function before it takes an event; the database (and S3 client) then open on
/// another thread. Every request waits for them ([`Starting::ready`]).
///
/// Why: a database that cannot open at a cold start (locked past its timeout, unreachable) must
/// not end the process (API Gateway would answer with its own 502 body): that request gets the
/// contract's 503 (with `Retry-After`) and the next request tries again, in the same process.
pub struct Starting<T> {
    open: Box<dyn Fn() -> Opening<T> + Send + Sync>,
    state: tokio::sync::Mutex<Start<T>>,
}

enum Start<T> {
    Opening(JoinHandle<Result<T, StartupError>>),
    Ready(Arc<T>),
    Failed,
}

impl Starting<App> {
    /// The database (migrated), the token keys and the ingest settings: a function without
    /// object storage. Nothing here reaches the S3 client, so a binary that starts this way does
    /// not carry the AWS SDK at all (LTO drops it): less to load and relocate on every cold
    /// start.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let cfg = AppConfig::from_env(env, Needs::DATABASE_ONLY)?;
        Ok(Self::spawn(move || App::without_storage(cfg.clone())))
    }

    /// [`Starting::from_env`] plus the S3 client: a function that uses object storage.
    pub fn with_storage_from_env(env: &Env) -> Result<Self, ConfigError> {
        let cfg = AppConfig::from_env(env, Needs::STORAGE)?;
        Ok(Self::spawn(move || App::new(cfg.clone())))
    }
}

impl<T: Send + Sync + 'static> Starting<T> {
    /// Starts `open` now, on the runtime's other threads.
    pub fn spawn<Fut>(open: impl Fn() -> Fut + Send + Sync + 'static) -> Self
    where
        Fut: Future<Output = Result<T, StartupError>> + Send + 'static,
    {
        let open: Box<dyn Fn() -> Opening<T> + Send + Sync> = Box::new(move || Box::pin(open()));
        let state = Start::Opening(tokio::spawn(open()));
        Self {
            open,
            state: tokio::sync::Mutex::new(state),
        }
    }

    /// What was opened, once it is; a 503 when opening failed (the next call tries again).
    pub async fn ready(&self) -> Result<Arc<T>, ApiError> {
        let mut state = self.state.lock().await;
        if let Start::Failed = *state {
            *state = Start::Opening(tokio::spawn((self.open)()));
        }
        let opening = match &mut *state {
            Start::Ready(opened) => return Ok(opened.clone()),
            Start::Opening(opening) => opening,
            Start::Failed => unreachable!("replaced above"),
        };
        let failed = match opening.await {
            Ok(Ok(opened)) => {
                let opened = Arc::new(opened);
                *state = Start::Ready(opened.clone());
                return Ok(opened);
            }
            Ok(Err(StartupError::Database(e))) => e.into(),
            Ok(Err(e)) => ApiError::internal(e),
            Err(e) => ApiError::internal(e),
        };
        tracing::error!(error = ?failed, "function cannot start; the next request tries again");
        *state = Start::Failed;
        Err(failed)
    }
}
