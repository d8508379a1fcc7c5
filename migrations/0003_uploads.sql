-- 0003: large uploads that go straight to object storage (presigned PUT / multipart).
--
-- A row is written when a client asks to upload (`pending`), before any byte reaches the
-- store, so every object under its key always has a row that knows about it: completion turns
-- it into a video (`completed`), a failed check deletes the object (`failed`), the client may
-- abort (`aborted`), and the worker's tick cleans up what was never finished (`expired`).
CREATE TABLE uploads (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_key      TEXT    NOT NULL UNIQUE,
    -- the store's multipart upload id; NULL for a single presigned PUT
    multipart_id    TEXT,
    filename        TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    size_bytes      INTEGER NOT NULL CHECK (size_bytes > 0),
    part_size       INTEGER NOT NULL CHECK (part_size > 0),
    part_count      INTEGER NOT NULL CHECK (part_count BETWEEN 1 AND 10000),
    title           TEXT,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'completing', 'completed', 'failed', 'aborted', 'expired')),
    -- while `completing`: the claim of the request doing it, and until when it holds
    claim_token     TEXT,
    claim_until     TEXT,
    video_source_id INTEGER REFERENCES video_sources (id) ON DELETE SET NULL,
    -- the answer completion gave (201 body, or the error body of a failed check): a repeat
    -- gets the same answer
    result_status   INTEGER,
    result_body     TEXT CHECK (result_body IS NULL OR json_valid(result_body)),
    expires_at      TEXT    NOT NULL,
    -- set once nothing of it is left in the store but what a video row points at and its URLs
    -- are dead (a completed upload at once; an aborted or failed one after its URLs expired,
    -- since a client could PUT again until then); the worker's sweep cleans up until it is set
    cleaned_at      TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    CHECK ((status = 'completing') = (claim_token IS NOT NULL AND claim_until IS NOT NULL)),
    CHECK ((status IN ('completed', 'failed')) = (result_status IS NOT NULL AND result_body IS NOT NULL))
);

-- The worker's sweep: uploads not yet cleaned up (every unfinished one among them), by expiry.
CREATE INDEX uploads_to_clean ON uploads (expires_at) WHERE cleaned_at IS NULL;

CREATE INDEX uploads_user ON uploads (user_id, id);

-- An upload that ended stays ended.
CREATE TRIGGER uploads_final_states
BEFORE UPDATE OF status ON uploads
WHEN OLD.status IN ('completed', 'failed', 'aborted', 'expired') AND NEW.status <> OLD.status
BEGIN
    SELECT RAISE(ABORT, 'an upload that ended cannot change state');
END;
