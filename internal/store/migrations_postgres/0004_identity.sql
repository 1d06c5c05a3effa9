-- Identity (PostgreSQL twin of migrations/0004_identity.sql).
CREATE TABLE users (
	user_name TEXT PRIMARY KEY,
	issuer TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	totp_secret BYTEA,
	totp_pending BYTEA,
	totp_last_step BIGINT NOT NULL DEFAULT 0,
	totp_failures BIGINT NOT NULL DEFAULT 0,
	totp_locked_until BIGINT NOT NULL DEFAULT 0,
	created BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_identity ON users(issuer, subject) WHERE subject != '';

CREATE TABLE recovery_codes (
	user_name TEXT NOT NULL,
	code_hash BYTEA NOT NULL,
	used_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_name, code_hash)
);

CREATE TABLE web_sessions (
	id_hash BYTEA PRIMARY KEY,
	user_name TEXT NOT NULL,
	issuer TEXT NOT NULL,
	subject TEXT NOT NULL,
	groups TEXT NOT NULL,
	mfa_at BIGINT NOT NULL DEFAULT 0,
	csrf TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_name);

CREATE TABLE login_tokens (
	token_hash BYTEA PRIMARY KEY,
	session_hash BYTEA NOT NULL,
	expires BIGINT NOT NULL,
	used_at BIGINT NOT NULL DEFAULT 0
);
