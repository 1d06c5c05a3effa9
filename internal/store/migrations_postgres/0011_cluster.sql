-- Cluster state (PostgreSQL twin of migrations/0011_cluster.sql): pending
-- plain-ssh approvals, the user a plain key belongs to, and termination
-- requests for sessions running on another instance.
CREATE TABLE ssh_approvals (
	code_hash TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	state TEXT NOT NULL,
	key_fingerprint TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	client_ip TEXT NOT NULL,
	source TEXT NOT NULL,               -- IPv4 address or IPv6 /64 (caps count by it)
	client_version TEXT NOT NULL,
	login TEXT NOT NULL,
	target TEXT NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	identity TEXT NOT NULL DEFAULT '',  -- JSON of the approving identity
	reuse_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ssh_approvals_owner ON ssh_approvals(owner, state);
CREATE INDEX ssh_approvals_source ON ssh_approvals(state, source);
CREATE INDEX ssh_approvals_reuse ON ssh_approvals(key_fingerprint, client_ip, login, target);
-- The user a plain key was last approved for, so a lock on that user
-- refuses the key on every instance before an approval code is shown.
CREATE TABLE ssh_key_users (
	key_fingerprint TEXT PRIMARY KEY,
	user_name TEXT NOT NULL,
	updated BIGINT NOT NULL            -- unix seconds
);
-- Terminations asked for on one instance of a session that may run on
-- another: the instance running it polls this table and ends the session.
CREATE TABLE session_terminations (
	session_id TEXT PRIMARY KEY,
	reason TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	created BIGINT NOT NULL            -- unix seconds
);
