-- 0001: users, video_sources, processing_jobs (the queue) and the rules that keep them consistent.
--
-- Timestamps are TEXT in one fixed RFC 3339 UTC form, `YYYY-MM-DDTHH:MM:SS.mmmZ`, written only by
-- the application (shared::time). One fixed width means text order is time order, so the queue's
-- `run_after` / `lease_expires_at` comparisons and the history's ordering work on plain TEXT.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

CREATE TABLE video_sources (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source_type      TEXT    NOT NULL CHECK (source_type IN ('youtube', 'upload')),
    source_url       TEXT,
    youtube_video_id TEXT,
    file_path        TEXT,
    title            TEXT,
    duration_seconds INTEGER CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
    thumbnail_url    TEXT,
    status           TEXT    NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error_message    TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    -- a YouTube source has its link, an upload has its object key
    CHECK (source_type <> 'youtube' OR (source_url IS NOT NULL AND youtube_video_id IS NOT NULL)),
    CHECK (source_type <> 'upload' OR file_path IS NOT NULL)
);

-- History: one user's videos, newest first (created_at, then id).
CREATE INDEX video_sources_user_history ON video_sources (user_id, created_at DESC, id DESC);

CREATE TABLE processing_jobs (
    id               INTEGER PRIMARY KEY,
    video_source_id  INTEGER NOT NULL REFERENCES video_sources (id) ON DELETE CASCADE,
    job_type         TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    progress         REAL    NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 100),
    payload          TEXT    NOT NULL CHECK (json_valid(payload)),
    result_summary   TEXT    CHECK (result_summary IS NULL OR json_valid(result_summary)),
    -- the queue's own columns
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after        TEXT    NOT NULL,          -- not claimable before this instant (back-off)
    lease_token      TEXT,                      -- set by a claim; guards heartbeat/complete/fail
    lease_expires_at TEXT,                      -- an expired lease is reaped back to the queue
    worker_id        TEXT,                      -- who holds (or last held) the lease, for operators
    error_message    TEXT,                      -- the last attempt's error
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    finished_at      TEXT,
    CHECK ((status = 'running') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The claim: the oldest claimable queued job. Partial, so finished jobs never slow it down.
CREATE INDEX processing_jobs_claimable ON processing_jobs (run_after, id) WHERE status = 'queued';
-- The reaper: running jobs by lease expiry.
CREATE INDEX processing_jobs_leases ON processing_jobs (lease_expires_at) WHERE status = 'running';
-- A video's jobs (foreign key, latest job of a video).
CREATE INDEX processing_jobs_video ON processing_jobs (video_source_id, id);

-- Progress only rises.
CREATE TRIGGER processing_jobs_progress_only_rises
BEFORE UPDATE OF progress ON processing_jobs
WHEN NEW.progress < OLD.progress
BEGIN
    SELECT RAISE(ABORT, 'processing_jobs.progress only rises');
END;

-- A completed job is final.
CREATE TRIGGER processing_jobs_completed_is_final
BEFORE UPDATE OF status ON processing_jobs
WHEN OLD.status = 'completed' AND NEW.status <> 'completed'
BEGIN
    SELECT RAISE(ABORT, 'a completed processing_job never changes status');
END;

-- A ready video is final.
CREATE TRIGGER video_sources_ready_is_final
BEFORE UPDATE OF status ON video_sources
WHEN OLD.status = 'ready' AND NEW.status <> 'ready'
BEGIN
    SELECT RAISE(ABORT, 'a ready video_source never changes status');
END;

-- The video follows its job, in the same statement (so in the same transaction, locally and over
-- a remote libSQL connection alike): claim -> processing, done -> ready, final failure -> failed.
CREATE TRIGGER processing_jobs_running_marks_video_processing
AFTER UPDATE OF status ON processing_jobs
WHEN NEW.status = 'running' AND OLD.status <> 'running'
BEGIN
    UPDATE video_sources SET status = 'processing', updated_at = NEW.updated_at
     WHERE id = NEW.video_source_id AND status = 'pending';
END;

CREATE TRIGGER processing_jobs_completed_marks_video_ready
AFTER UPDATE OF status ON processing_jobs
WHEN NEW.status = 'completed' AND OLD.status <> 'completed'
BEGIN
    UPDATE video_sources SET status = 'ready', error_message = NULL, updated_at = NEW.updated_at
     WHERE id = NEW.video_source_id AND status IN ('pending', 'processing');
END;

CREATE TRIGGER processing_jobs_failed_marks_video_failed
AFTER UPDATE OF status ON processing_jobs
WHEN NEW.status = 'failed' AND OLD.status <> 'failed'
BEGIN
    UPDATE video_sources SET status = 'failed', error_message = NEW.error_message,
                             updated_at = NEW.updated_at
     WHERE id = NEW.video_source_id AND status IN ('pending', 'processing');
END;
