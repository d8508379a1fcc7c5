//! How a large upload ends without a video: aborted by its user (`DELETE
//! /viral-clip/video/uploads/{upload_id}`), or expired by the worker's sweep; and the clean-up
//! of what reached the store, which every ending shares.

use std::time::Duration;

use crate::db::{DbError, PooledConnection};
use crate::error::ApiError;
use crate::repo::uploads::{self, Upload, UploadStatus};
use crate::storage::{LazyStorage, Storage};

/// The 404 of an upload that is not the caller's (or does not exist).
pub fn no_such_upload() -> ApiError {
    ApiError::NotFound("no such upload".into())
}

/// `DELETE /viral-clip/video/uploads/{upload_id}`: stops an unfinished upload and removes what
/// reached the store. Aborting an ended (failed, aborted, expired) upload again is a no-op.
pub async fn abort(
    conn: &PooledConnection,
    storage: &Storage,
    user_id: i64,
    upload_id: i64,
) -> Result<(), ApiError> {
    // The close first (the usual case is one statement); only when it finds nothing to close is
    // the upload read, to say why.
    let closed = uploads::close_for_user(conn, upload_id, user_id, conn.now()).await?;
    if let Some(upload) = closed {
        clean(conn, storage, &upload).await;
        return Ok(());
    }
    let upload = uploads::get_for_user(conn, upload_id, user_id)
        .await?
        .ok_or_else(no_such_upload)?;
    match upload.status {
        UploadStatus::Completed => Err(ApiError::Conflict(format!(
            "this upload is already complete (video {}); it cannot be aborted",
            upload
                .video_source_id
                .map_or("?".into(), |id| id.to_string())
        ))),
        UploadStatus::Completing => Err(ApiError::Conflict(
            "this upload is being completed right now; it cannot be aborted".into(),
        )),
        // ended already (aborting again changes nothing), or closed by another request just now
        UploadStatus::Failed
        | UploadStatus::Aborted
        | UploadStatus::Expired
        | UploadStatus::Pending => Ok(()),
    }
}

/// Removes an ended upload's parts and object. The sweep does it again once the upload's URLs
/// have expired (a client could PUT again until then), and retries a failed clean-up.
pub(crate) async fn clean(conn: &PooledConnection, storage: &Storage, upload: &Upload) -> bool {
    let result = async {
        if let Some(id) = &upload.multipart_id {
            storage.abort_multipart(&upload.object_key, id).await?;
        }
        storage.delete(&upload.object_key).await
    }
    .await;
    let now = conn.now();
    match result {
        // Until its URLs expire a client could PUT again: it is cleaned again (and marked) then.
        Ok(()) if upload.expires_at >= now => false,
        Ok(()) => match uploads::mark_cleaned(conn, upload.id, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(upload_id = upload.id, error = %e, "clean-up not recorded; the sweep repeats it");
                false
            }
        },
        Err(e) => {
            tracing::warn!(upload_id = upload.id, error = %e, "clean-up failed; the sweep tries again");
            false
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Unfinished uploads past their completion deadline, now `expired`.
    pub expired: u32,
    /// Uploads whose leftovers were removed.
    pub cleaned: u32,
    /// Clean-ups that failed (tried again next time).
    pub failed: u32,
}

/// The worker's sweep: expires uploads nobody completed in time (URL expiry plus `grace`) and
/// removes the leftovers of every ended upload not cleaned up yet (at most `limit` per call).
/// The storage is connected only when there is something to clean.
pub async fn sweep(
    conn: &PooledConnection,
    storage: &LazyStorage,
    grace: Duration,
    limit: u32,
) -> Result<SweepReport, DbError> {
    let now = conn.now();
    let mut report = SweepReport::default();
    for upload in uploads::to_clean(conn, now, now - grace, limit).await? {
        if matches!(
            upload.status,
            UploadStatus::Pending | UploadStatus::Completing
        ) {
            if !uploads::close(conn, upload.id, UploadStatus::Expired, now).await? {
                continue; // being completed right now
            }
            report.expired += 1;
        }
        if clean(conn, storage.get().await, &upload).await {
            report.cleaned += 1;
        } else {
            report.failed += 1;
        }
    }
    Ok(report)
}
