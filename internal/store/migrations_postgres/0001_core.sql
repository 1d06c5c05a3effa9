-- Core schema: sealed secrets, issued certificates, session records.
-- PostgreSQL twin of migrations/0001_core.sql: INTEGER (64-bit in SQLite)
-- is BIGINT, BLOB is BYTEA; flags stay 0/1 integers as in SQLite.
CREATE TABLE secrets (
	name TEXT PRIMARY KEY,
	value BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE certificates (
	serial BIGINT PRIMARY KEY,
	kind TEXT NOT NULL,
	key_id TEXT NOT NULL,
	principals TEXT NOT NULL,
	user_name TEXT NOT NULL,
	session_id TEXT NOT NULL DEFAULT '',
	key_fingerprint TEXT NOT NULL,
	valid_after BIGINT NOT NULL,
	valid_before BIGINT NOT NULL,
	issued_at BIGINT NOT NULL
);
CREATE INDEX certificates_user ON certificates(user_name, issued_at);

CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	user_name TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	client_version TEXT NOT NULL,
	key_fingerprint TEXT NOT NULL,
	user_cert_serial BIGINT NOT NULL,
	target TEXT NOT NULL,
	target_kind TEXT NOT NULL,
	login TEXT NOT NULL,
	mode TEXT NOT NULL,
	kind TEXT NOT NULL DEFAULT '',
	command TEXT NOT NULL DEFAULT '',
	session_cert_serial BIGINT NOT NULL DEFAULT 0,
	start_at BIGINT NOT NULL,
	end_at BIGINT,
	exit_status BIGINT,
	exit_signal TEXT NOT NULL DEFAULT '',
	end_reason TEXT NOT NULL DEFAULT '',
	bytes_in BIGINT NOT NULL DEFAULT 0,
	bytes_out BIGINT NOT NULL DEFAULT 0,
	recording_id TEXT NOT NULL DEFAULT '',
	recording_complete BIGINT NOT NULL DEFAULT 0,
	recording_sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_start ON sessions(start_at);
CREATE INDEX sessions_user ON sessions(user_name, start_at);
CREATE INDEX sessions_target ON sessions(target, start_at);
CREATE INDEX sessions_open ON sessions(end_at) WHERE end_at IS NULL;
