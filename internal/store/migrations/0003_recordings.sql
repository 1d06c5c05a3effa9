-- Session recordings: encrypted files in recording.dir, described here.
CREATE TABLE recordings (
	id TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	user_name TEXT NOT NULL,
	target TEXT NOT NULL,
	login TEXT NOT NULL,
	file TEXT NOT NULL,             -- file name inside recording.dir
	wrapped_key BLOB NOT NULL,      -- data key sealed with the master key
	started INTEGER NOT NULL,       -- unix nanoseconds
	ended INTEGER,                  -- NULL while being written
	complete INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	sha256 TEXT NOT NULL DEFAULT '', -- of the encrypted file
	bytes INTEGER NOT NULL DEFAULT 0, -- recorded output bytes
	cols INTEGER NOT NULL,
	rows INTEGER NOT NULL,
	interactive INTEGER NOT NULL,
	command TEXT NOT NULL DEFAULT ''
);
CREATE INDEX recordings_session ON recordings(session_id);
CREATE INDEX recordings_open ON recordings(ended) WHERE ended IS NULL;

CREATE TABLE recording_commands (
	recording_id TEXT NOT NULL REFERENCES recordings(id),
	seq INTEGER NOT NULL,
	offset_us INTEGER NOT NULL,     -- from the start of the recording
	time INTEGER NOT NULL,          -- unix nanoseconds
	source TEXT NOT NULL,           -- exec | screen
	text TEXT NOT NULL,
	PRIMARY KEY (recording_id, seq)
);
CREATE INDEX recording_commands_text ON recording_commands(text);
