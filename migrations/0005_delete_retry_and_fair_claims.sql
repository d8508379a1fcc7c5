-- 0005: users delete videos and try failed ones again; claims take turns across users.

-- A deleted video is marked (`deleted_at`): from then on the API and the history do not show
-- it, and its unfinished jobs end in the same statement (trigger below). Its object, if it has
-- one, is removed from the store by the request or, when that fails, by the worker's sweep;
-- `purged_at` records that nothing of it is left in the store. The row stays behind as a
-- tombstone, so its id and its object key are never given to anything else.
ALTER TABLE video_sources ADD COLUMN deleted_at TEXT;
ALTER TABLE video_sources ADD COLUMN purged_at TEXT;

-- The worker's sweep: deleted videos whose object may still be in the store.
CREATE INDEX video_sources_to_purge ON video_sources (deleted_at)
    WHERE deleted_at IS NOT NULL AND purged_at IS NULL;

-- The history walks only videos that are not deleted.
DROP INDEX video_sources_user_history;
CREATE INDEX video_sources_user_history ON video_sources (user_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
DROP INDEX video_sources_user_status_history;
CREATE INDEX video_sources_user_status_history
    ON video_sources (user_id, status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- Deleting a video ends its queued and running jobs: a queued one is never claimed, a running
-- one's lease is gone, so its worker's next heartbeat or progress write finds the lease lost and
-- its guarded finish changes nothing.
CREATE TRIGGER video_sources_deleted_ends_its_jobs
AFTER UPDATE OF deleted_at ON video_sources
WHEN NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL
BEGIN
    UPDATE processing_jobs
       SET status = 'failed', error_message = 'cancelled: the video was deleted',
           lease_token = NULL, lease_expires_at = NULL,
           finished_at = NEW.deleted_at, updated_at = NEW.deleted_at
     WHERE video_source_id = NEW.id AND status IN ('queued', 'running');
END;

-- Fair claiming: every job gets a `turn` when it is inserted, and the claim takes the lowest
-- turn first (then the oldest id). A user's jobs take consecutive turns, starting no earlier
-- than the turn of the last job claimed (`queue_turns.claimed`): a user who submits while
-- another has a backlog of 10,000 is next in line after the job the workers reached, not
-- after the whole backlog, and users with backlogs take turns one job each.
ALTER TABLE users ADD COLUMN queue_turn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE processing_jobs ADD COLUMN turn INTEGER NOT NULL DEFAULT 0;

CREATE TABLE queue_turns (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    claimed INTEGER NOT NULL
);
INSERT INTO queue_turns (id, claimed) VALUES (1, 0);

-- The claim: queued jobs by turn. Partial, so finished jobs never slow it down.
CREATE INDEX processing_jobs_turns ON processing_jobs (turn, id) WHERE status = 'queued';

CREATE TRIGGER processing_jobs_take_a_turn
AFTER INSERT ON processing_jobs
BEGIN
    UPDATE users
       SET queue_turn = max(queue_turn, (SELECT claimed FROM queue_turns WHERE id = 1)) + 1
     WHERE id = (SELECT user_id FROM video_sources WHERE id = NEW.video_source_id);
    -- (a job whose video does not exist keeps turn 0: the statement fails its foreign key)
    UPDATE processing_jobs
       SET turn = coalesce((SELECT u.queue_turn FROM users u
                              JOIN video_sources v ON v.user_id = u.id
                             WHERE v.id = NEW.video_source_id), 0)
     WHERE id = NEW.id;
END;

CREATE TRIGGER processing_jobs_claim_moves_the_turn
AFTER UPDATE OF status ON processing_jobs
WHEN NEW.status = 'running' AND OLD.status = 'queued'
BEGIN
    UPDATE queue_turns SET claimed = NEW.turn WHERE id = 1 AND claimed < NEW.turn;
END;
