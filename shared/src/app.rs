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
    pub async fn new(cfg: AppConfig) -> Result<Self, StartupError> {
        let db = Db::open(&cfg.database).await?;
        crate::migrations::migrate(&*db.connect().await?).await?;
        let storage = match &cfg.storage {
            Some(s) => Some(Storage::connect(s).await),
            None => None,
        };
        tracing::info!(database = ?cfg.database, storage = ?cfg.storage, "function ready");
        Ok(Self {
            db,
            auth: Auth::new(&cfg.auth),
            storage,
            ingest: cfg.ingest,
        })
    }

    pub async fn from_env(env: &Env, needs: Needs) -> Result<Self, StartupError> {
        Self::new(AppConfig::from_env(env, needs)?).await
    }

    /// The storage client (for functions built with [`Needs::STORAGE`]).
    pub fn storage(&self) -> Result<&Storage, crate::error::ApiError> {
        self.storage.as_ref().ok_or_else(|| {
            crate::error::ApiError::Internal("this function has no storage configured".into())
        })
    }
}
