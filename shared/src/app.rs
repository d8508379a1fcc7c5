//! What an HTTP function holds for its whole life: configuration read once, the database
//! opened (and migrated) once, the token keys and the storage client built once per cold start.

use crate::auth::{Auth, AuthConfig};
use crate::config::{ConfigError, DatabaseUrl, Env};
use crate::db::{Db, DbError};
use crate::ingest::IngestConfig;
use crate::storage::{Storage, StorageConfig};

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
        let db = Db::open(&cfg.database).await?;
        crate::migrations::migrate(&*db.connect().await?).await?;
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

    /// A function without object storage. Nothing here reaches the S3 client, so a binary that
    /// starts this way does not carry the AWS SDK at all (LTO drops it): 15.6 → 9.1 MiB, and less
    /// to load and relocate on every cold start (BENCHMARKS.md, "Cold start").
    pub async fn from_env(env: &Env) -> Result<Self, StartupError> {
        let cfg = AppConfig::from_env(env, Needs::DATABASE_ONLY)?;
        let app = Self::open(&cfg).await?;
        tracing::info!(database = ?cfg.database, "function ready");
        Ok(app)
    }

    /// A function that uses object storage: [`App::from_env`] plus the S3 client.
    pub async fn with_storage_from_env(env: &Env) -> Result<Self, StartupError> {
        Self::new(AppConfig::from_env(env, Needs::STORAGE)?).await
    }

    /// The storage client (for functions started with [`App::with_storage_from_env`]).
    pub fn storage(&self) -> Result<&Storage, crate::error::ApiError> {
        self.storage.as_ref().ok_or_else(|| {
            crate::error::ApiError::Internal("this function has no storage configured".into())
        })
    }
}
