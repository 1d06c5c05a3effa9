-- The audit log: one hash-chained table of events, the stored hashes of its
-- Merkle tree (golang.org/x/mod/sumdb/tlog layout), and signed checkpoints.
CREATE TABLE audit_events (
	id INTEGER PRIMARY KEY,            -- 1, 2, 3, ... without gaps
	time INTEGER NOT NULL,             -- unix nanoseconds, UTC
	type TEXT NOT NULL,
	user_name TEXT NOT NULL,
	user_issuer TEXT NOT NULL,
	user_subject TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	client_version TEXT NOT NULL,
	key_fingerprint TEXT NOT NULL,
	cert_serial INTEGER NOT NULL,
	target TEXT NOT NULL,
	login TEXT NOT NULL,
	session_id TEXT NOT NULL,
	reason TEXT NOT NULL,
	details TEXT NOT NULL,             -- canonical JSON object
	prev_hash BLOB NOT NULL,           -- hash of event id-1 (zeros for id 1)
	hash BLOB NOT NULL                 -- SHA-256(prev_hash || canonical encoding)
);
CREATE INDEX audit_events_time ON audit_events(time);
CREATE INDEX audit_events_user ON audit_events(user_name, time);
CREATE INDEX audit_events_target ON audit_events(target, time);
CREATE INDEX audit_events_type ON audit_events(type, time);
CREATE INDEX audit_events_session ON audit_events(session_id);

CREATE TABLE audit_tree (
	idx INTEGER PRIMARY KEY,           -- tlog stored hash index
	hash BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
	id INTEGER PRIMARY KEY,
	tree_size INTEGER NOT NULL,
	root_hash BLOB NOT NULL,
	time INTEGER NOT NULL,
	note TEXT NOT NULL                 -- signed note (golang.org/x/mod/sumdb/note)
);
