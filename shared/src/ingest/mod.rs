//! Creating videos, one module per flow. Every flow that makes a video (a link, a direct upload, a
//! completed large upload) ends in [`create`]: a `video_sources` row and its queued
//! `processing_jobs` row, with what else the request records, in one transaction.
//!
//! - [`youtube`]: `POST /viral-clip/video/youtube`, a link.
//! - [`direct_upload`]: `POST /viral-clip/video/upload`, a file in a multipart form.
//! - [`upload_plan`]: `POST /viral-clip/video/uploads`, presigned URLs straight to storage.
//! - [`upload_complete`]: `POST /viral-clip/video/uploads/{id}/complete`, the stored object
//!   checked and turned into a video.
//! - [`upload_end`]: an upload aborted, or expired and swept, and the clean-up of its object.
//!
//! The submodules use [`config`] and [`create`] and each other only downwards (plan and
//! complete use `upload_end`); none imports this module's re-exports.

pub mod config;
pub mod create;
pub mod direct_upload;
pub mod upload_complete;
pub mod upload_end;
pub mod upload_plan;
pub mod youtube;

pub use config::IngestConfig;
pub use create::{Created, Outcome};
