-- 0004: a guard a multi-statement write can raise to abort itself, and uploads by object key.
--
-- A write that must run as one round trip to a remote libSQL server is sent as one batch, with
-- no chance to look at a result between its statements. A step that must not commit unless the
-- step before it changed exactly one row (a claim still held, say) is followed by
-- `INSERT INTO write_guards (held) SELECT changes() = 1`: when that is false the trigger aborts
-- the statement, the batch stops there, and the transaction commits nothing
-- (shared::db::GUARD_SQL). Nothing is ever stored: the view has no table behind it.
CREATE VIEW write_guards (held) AS SELECT 1;

CREATE TRIGGER write_guards_abort
INSTEAD OF INSERT ON write_guards
WHEN NOT NEW.held
BEGIN
    SELECT RAISE(ABORT, 'write guard: a condition of this write no longer holds');
END;

-- An upload's video, found by its object key when the upload is completed.
CREATE INDEX video_sources_file_path ON video_sources (file_path);
