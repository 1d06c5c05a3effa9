-- Locks (PostgreSQL twin of migrations/0005_locks.sql).
CREATE TABLE locks (
	user_name TEXT PRIMARY KEY,
	reason TEXT NOT NULL,
	locked_by TEXT NOT NULL,
	created BIGINT NOT NULL,
	until BIGINT NOT NULL
);
