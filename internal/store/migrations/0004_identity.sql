-- Identity: users bound to their OIDC identity, TOTP state, recovery codes,
-- web sessions and one-time CLI login tokens.
CREATE TABLE users (
	user_name TEXT PRIMARY KEY,
	issuer TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	totp_secret BLOB,                 -- sealed with the master key
	totp_pending BLOB,                -- sealed; during enrolment
	totp_last_step INTEGER NOT NULL DEFAULT 0,
	totp_failures INTEGER NOT NULL DEFAULT 0,
	totp_locked_until INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_identity ON users(issuer, subject) WHERE subject != '';

CREATE TABLE recovery_codes (
	user_name TEXT NOT NULL,
	code_hash BLOB NOT NULL,          -- SHA-256 of the code
	used_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_name, code_hash)
);

CREATE TABLE web_sessions (
	id_hash BLOB PRIMARY KEY,         -- SHA-256 of the cookie value
	user_name TEXT NOT NULL,
	issuer TEXT NOT NULL,
	subject TEXT NOT NULL,
	groups TEXT NOT NULL,
	mfa_at INTEGER NOT NULL DEFAULT 0, -- 0 until TOTP is verified
	csrf TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_name);

CREATE TABLE login_tokens (
	token_hash BLOB PRIMARY KEY,      -- SHA-256; the token itself is shown once
	session_hash BLOB NOT NULL,
	expires INTEGER NOT NULL,
	used_at INTEGER NOT NULL DEFAULT 0
);
