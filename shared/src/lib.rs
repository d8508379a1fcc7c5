//! ViralClip ingest: everything the function crates share, with no Lambda types in it.
//!
//! - [`config`]: typed configuration from the environment, read once.
//! - [`db`]: the libSQL database (local SQLite file or remote server) and safe row reading.
//! - [`migrations`]: the embedded, checksummed schema migrations.
//! - [`model`], [`time`]: status enums and timestamps with their one stored form.
//! - [`repo`]: one module per table.
//! - [`queue`]: the durable job queue on `processing_jobs`.
//! - [`quota`]: how much work one account may start, checked inside the writes that start it.
//! - [`pipeline`], [`worker`]: what runs a claimed job, and the loop of one worker invocation.
//! - [`error`], [`http`]: the API's one error type and the HTTP plumbing (on `http` types).
//! - [`auth`]: passwords, tokens and the extractor of protected routes.
//! - [`youtube`], [`clip_config`], [`title`], [`media`]: typed, parsed inputs.
//! - [`storage`]: the S3-compatible object store.
//! - [`ingest`] (a module per flow), [`history`]: what the ingest and history routes do.
//! - [`videos`]: one of the caller's videos looked at, deleted or tried again, and the purge of
//!   what deleted videos left in the store.

pub mod app;
pub mod auth;
pub mod clip_config;
pub mod config;
pub mod db;
pub mod error;
pub mod history;
pub mod http;
pub mod ingest;
pub mod media;
pub mod migrations;
pub mod model;
pub mod pipeline;
pub mod queue;
pub mod quota;
pub mod repo;
pub mod storage;
pub mod telemetry;
pub mod time;
pub mod title;
pub mod videos;
pub mod worker;
pub mod youtube;
