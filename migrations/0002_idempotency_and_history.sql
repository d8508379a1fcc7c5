-- 0002: idempotent ingest and the history's status filter.

-- A repeated request with the same Idempotency-Key (per user and route) gets the first
-- response back instead of creating a second video. `request_hash` tells a genuine retry from
-- a different request reusing a key.
CREATE TABLE idempotency_keys (
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    route           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    video_source_id INTEGER NOT NULL REFERENCES video_sources (id) ON DELETE CASCADE,
    response_body   TEXT    NOT NULL CHECK (json_valid(response_body)),
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (user_id, route, key)
) WITHOUT ROWID;

CREATE INDEX idempotency_keys_video ON idempotency_keys (video_source_id);

-- History filtered by status: one user's videos of one status, newest first.
CREATE INDEX video_sources_user_status_history ON video_sources (user_id, status, created_at DESC, id DESC);
