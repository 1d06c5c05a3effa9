-- Core schema: sealed secrets, issued certificates, session records.
CREATE TABLE secrets (
	name TEXT PRIMARY KEY,
	value BLOB NOT NULL,          -- sealed with the master key (secrets.Keyring)
	created_at INTEGER NOT NULL
);

CREATE TABLE certificates (
	serial INTEGER PRIMARY KEY,   -- ssh.Certificate.Serial (random, as int64 bits)
	kind TEXT NOT NULL,           -- user | session | host
	key_id TEXT NOT NULL,
	principals TEXT NOT NULL,     -- comma separated
	user_name TEXT NOT NULL,
	session_id TEXT NOT NULL DEFAULT '',
	key_fingerprint TEXT NOT NULL,
	valid_after INTEGER NOT NULL,
	valid_before INTEGER NOT NULL,
	issued_at INTEGER NOT NULL
);
CREATE INDEX certificates_user ON certificates(user_name, issued_at);

CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	user_name TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	client_version TEXT NOT NULL,
	key_fingerprint TEXT NOT NULL,
	user_cert_serial INTEGER NOT NULL,
	target TEXT NOT NULL,
	target_kind TEXT NOT NULL,
	login TEXT NOT NULL,
	mode TEXT NOT NULL,           -- direct | proxyjump
	kind TEXT NOT NULL DEFAULT '',-- shell | exec | subsystem:<name>
	command TEXT NOT NULL DEFAULT '',
	session_cert_serial INTEGER NOT NULL DEFAULT 0,
	start_at INTEGER NOT NULL,    -- unix nanoseconds, UTC
	end_at INTEGER,               -- NULL while running
	exit_status INTEGER,
	exit_signal TEXT NOT NULL DEFAULT '',
	end_reason TEXT NOT NULL DEFAULT '',
	bytes_in INTEGER NOT NULL DEFAULT 0,   -- client to target
	bytes_out INTEGER NOT NULL DEFAULT 0,  -- target to client
	recording_id TEXT NOT NULL DEFAULT '',
	recording_complete INTEGER NOT NULL DEFAULT 0,
	recording_sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_start ON sessions(start_at);
CREATE INDEX sessions_user ON sessions(user_name, start_at);
CREATE INDEX sessions_target ON sessions(target, start_at);
CREATE INDEX sessions_open ON sessions(end_at) WHERE end_at IS NULL;
