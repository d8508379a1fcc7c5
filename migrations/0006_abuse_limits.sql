-- 0006: abuse limits. Sign-in failures are counted per email, so a password guesser is stopped
-- before any hash is computed; per-user quotas are checked inside the writes that start work.

-- Failed sign-ins of one email (any email, an account's or not: the same answer for both) in the
-- window that began with the first of them. The sign-in's one read joins this row; a failure
-- adds to it, a success deletes it. Rows whose window ended are pruned by later failures.
CREATE TABLE sign_in_failures (
    email             TEXT    PRIMARY KEY,
    failures          INTEGER NOT NULL CHECK (failures >= 1),
    window_started_at TEXT    NOT NULL
) WITHOUT ROWID;

CREATE INDEX sign_in_failures_window ON sign_in_failures (window_started_at);

-- A user's new videos in the last hour, deleted ones included (deleting a video gives back no
-- hourly allowance).
CREATE INDEX video_sources_user_created ON video_sources (user_id, created_at);

-- A quota check, the first step of a write that starts work (a new video, an upload, a retry):
-- `INSERT INTO quota_checks … SELECT …` aborts the statement, and so the whole transaction, when
-- the user already has `max_active` videos waiting or processing (each has its one queued or
-- running job) or, when `max_new` is not NULL, `max_new` new videos since `since`. Nothing is
-- ever stored: the view has no table behind it. Each count stops at its limit, so a check reads
-- at most that many index entries. The messages are read by shared::quota.
CREATE VIEW quota_checks (user_id, max_active, max_new, since) AS
    SELECT NULL, NULL, NULL, NULL;

CREATE TRIGGER quota_checks_refuse
INSTEAD OF INSERT ON quota_checks
BEGIN
    SELECT RAISE(ABORT, 'quota: queued or running jobs')
     WHERE (SELECT count(*) FROM (SELECT 1 FROM video_sources
             WHERE user_id = NEW.user_id AND status IN ('pending', 'processing')
               AND deleted_at IS NULL LIMIT NEW.max_active)) >= NEW.max_active;
    SELECT RAISE(ABORT, 'quota: new videos per hour')
     WHERE NEW.max_new IS NOT NULL
       AND (SELECT count(*) FROM (SELECT 1 FROM video_sources
             WHERE user_id = NEW.user_id AND created_at > NEW.since
             LIMIT NEW.max_new)) >= NEW.max_new;
END;
