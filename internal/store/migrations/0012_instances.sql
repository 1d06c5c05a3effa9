-- Instances: every `gatehouse serve` registers itself with a lease it renews
-- on a heartbeat; sessions and recordings name the instance that owns them,
-- so recovery seals only the rows of an instance whose lease has run out.
CREATE TABLE instances (
	id TEXT PRIMARY KEY,
	host TEXT NOT NULL,
	pid INTEGER NOT NULL,
	started INTEGER NOT NULL,      -- unix nanoseconds
	renewed INTEGER NOT NULL,      -- unix nanoseconds (the database's clock on PostgreSQL)
	lease_until INTEGER NOT NULL,  -- the same clock; 0 once the instance stopped cleanly
	stopped INTEGER                -- unix nanoseconds of a clean stop, NULL while running
);
ALTER TABLE sessions ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
-- 1 while a recording's final record could not be written (its store was
-- down): recovery retries the seal until it is.
ALTER TABLE recordings ADD COLUMN seal_pending INTEGER NOT NULL DEFAULT 0;
UPDATE recordings SET seal_pending = 1 WHERE ended IS NOT NULL AND reason LIKE '%(seal failed:%';
CREATE INDEX recordings_seal_pending ON recordings(instance_id) WHERE seal_pending = 1;
