-- Instances and the owner of each session and recording (PostgreSQL twin of
-- migrations/0012_instances.sql).
CREATE TABLE instances (
	id TEXT PRIMARY KEY,
	host TEXT NOT NULL,
	pid BIGINT NOT NULL,
	started BIGINT NOT NULL,
	renewed BIGINT NOT NULL,
	lease_until BIGINT NOT NULL,
	stopped BIGINT
);
ALTER TABLE sessions ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN seal_pending BIGINT NOT NULL DEFAULT 0;
UPDATE recordings SET seal_pending = 1 WHERE ended IS NOT NULL AND reason LIKE '%(seal failed:%';
CREATE INDEX recordings_seal_pending ON recordings(instance_id) WHERE seal_pending = 1;
