-- Session recordings (PostgreSQL twin of migrations/0003_recordings.sql).
CREATE TABLE recordings (
	id TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	user_name TEXT NOT NULL,
	target TEXT NOT NULL,
	login TEXT NOT NULL,
	file TEXT NOT NULL,
	wrapped_key BYTEA NOT NULL,
	started BIGINT NOT NULL,
	ended BIGINT,
	complete BIGINT NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	sha256 TEXT NOT NULL DEFAULT '',
	bytes BIGINT NOT NULL DEFAULT 0,
	cols BIGINT NOT NULL,
	rows BIGINT NOT NULL,
	interactive BIGINT NOT NULL,
	command TEXT NOT NULL DEFAULT ''
);
CREATE INDEX recordings_session ON recordings(session_id);
CREATE INDEX recordings_open ON recordings(ended) WHERE ended IS NULL;

CREATE TABLE recording_commands (
	recording_id TEXT NOT NULL REFERENCES recordings(id),
	seq BIGINT NOT NULL,
	offset_us BIGINT NOT NULL,
	time BIGINT NOT NULL,
	source TEXT NOT NULL,
	text TEXT NOT NULL,
	PRIMARY KEY (recording_id, seq)
);
CREATE INDEX recording_commands_text ON recording_commands(text);
