-- Locks: a locked user cannot start new connections until the lock ends or
-- is lifted; locking also ends their live sessions.
CREATE TABLE locks (
	user_name TEXT PRIMARY KEY,
	reason TEXT NOT NULL,
	locked_by TEXT NOT NULL,
	created INTEGER NOT NULL,
	until INTEGER NOT NULL            -- unix seconds; 0 = until lifted
);
