-- Just-in-time access requests (PostgreSQL twin of migrations/0010_access_requests.sql).
CREATE TABLE access_requests (
	id TEXT PRIMARY KEY,
	user_name TEXT NOT NULL,
	role TEXT NOT NULL,
	reason TEXT NOT NULL,
	duration BIGINT NOT NULL,
	state TEXT NOT NULL,
	created BIGINT NOT NULL,
	decided BIGINT NOT NULL DEFAULT 0,
	expires BIGINT NOT NULL DEFAULT 0,
	denied_by TEXT NOT NULL DEFAULT '',
	note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX access_requests_user ON access_requests(user_name, created);
CREATE INDEX access_requests_state ON access_requests(state, expires);
CREATE TABLE access_approvals (
	request_id TEXT NOT NULL REFERENCES access_requests(id),
	approver TEXT NOT NULL,
	created BIGINT NOT NULL,
	PRIMARY KEY (request_id, approver)
);
